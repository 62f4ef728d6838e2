from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from controlplane import anchors, aws
from controlplane.auditkeys import AuditKeyError


class Command(BaseCommand):
    help = (
        "Append the audit chain's current head (seq, hash, MAC, kid, time; with a MAC of the "
        "anchor itself) to FILE, one JSON line per anchor; the file keeps every anchor written "
        "to it. Keep it where whoever can write the database cannot, and check it with "
        "`verify_audit --anchor FILE`."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", metavar="FILE")
        parser.add_argument(
            "--s3", action="store_true",
            help="Also put the anchor to CONTROLPLANE_AUDIT_ANCHOR_S3_BUCKET under Object Lock.",
        )

    def handle(self, *args, file, s3, **options):
        if s3 and not settings.AUDIT_ANCHOR_S3_BUCKET:
            raise CommandError("--s3: set CONTROLPLANE_AUDIT_ANCHOR_S3_BUCKET first.")
        try:
            anchor = anchors.take()
        except (AuditKeyError, anchors.AnchorError) as exc:
            raise CommandError(str(exc)) from None
        path = anchors.append(file, anchor)
        self.stdout.write(f"Anchored the audit chain at seq {anchor['seq']} in {path}.")
        if s3:
            try:
                key = anchors.put_s3(anchor)
            except (aws.ClientError, aws.BotoCoreError) as exc:
                raise CommandError(f"The anchor was written to {path} but not to S3: {exc}") from None
            self.stdout.write(f"Put it to s3://{settings.AUDIT_ANCHOR_S3_BUCKET}/{key}.")
