from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from experiments import evidence


class Command(BaseCommand):
    help = (
        "Check an evidence pack (the HTML or the PDF of a drill) against the audit log: its "
        "SHA-256 must be the one an evidence.produced event recorded when the pack was served, "
        "and the audit chain must verify. Exits 0 naming the event; non-zero with the reason "
        "otherwise (the file was changed, or was not produced by this control plane)."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", metavar="FILE", help="The evidence pack, .html or .pdf.")

    def handle(self, *args, file, **options):
        path = Path(file)
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror or exc}.") from None
        digest = evidence.sha256(content)
        events = evidence.events_for(digest)
        if not events:
            raise CommandError(self._why_not(content, digest))
        intact, verdict = evidence.chain_verdict()
        if not intact:
            raise CommandError(
                f"The file's SHA-256 {digest} is recorded by audit event seq {events[0].seq}, but the "
                f"audit chain {verdict}: the record cannot be trusted. Run `manage.py verify_audit`."
            )
        first = events[0]
        fmt = (first.after or {}).get("format", "?")
        self.stdout.write(self.style.SUCCESS(
            f"Evidence pack verified: SHA-256 {digest} matches audit event seq {first.seq} "
            f"({first.action}: {first.object_repr}, {fmt}, produced for {first.actor} via {first.source} "
            f"at {first.created_at:%Y-%m-%d %H:%M:%S} UTC); the audit chain is {verdict}."
        ))
        if len(events) > 1:
            seqs = ", ".join(str(e.seq) for e in events[1:])
            self.stdout.write(f"The same bytes were served again (audit events seq {seqs}).")

    def _why_not(self, content, digest):
        head = f"No audit event records the SHA-256 {digest} of this file"
        if content.startswith(b"%PDF-"):
            return (
                f"{head}: this PDF was changed after it was served, or was not served by this control "
                "plane (every PDF served has its own digest recorded)."
            )
        drill = evidence.claimed_drill(content)
        if drill is None:
            return f"{head}, and it does not look like an evidence pack (no drill named in it)."
        known = evidence.events_of_drill(drill)
        if not known:
            return f"{head}. It names drill #{drill}, but no pack of that drill was ever produced here."
        return (
            f"{head}. It names drill #{drill}, whose {len(known)} pack(s) produced here have other "
            "digests: the file was changed after it was produced."
        )
