"""The console's channel form: it parses; notifications.services validates."""

from django import forms

from controlplane.events import EventKind
from notifications.models import ChannelKind


class ChannelForm(forms.Form):
    name = forms.CharField(max_length=100)
    kind = forms.ChoiceField(choices=ChannelKind.choices)
    target = forms.CharField(max_length=2000, required=False,
                             help_text="webhook: https://… or env:NAME; SNS: the topic ARN; email: empty")
    all_events = forms.BooleanField(required=False, label="All events")
    events = forms.MultipleChoiceField(choices=EventKind.choices, required=False,
                                       widget=forms.CheckboxSelectMultiple, label="Events (when not all)")
    slack = forms.BooleanField(required=False, label="Slack-compatible body (webhook)")

    def service_arguments(self):
        data = self.cleaned_data
        return {
            "name": data["name"], "kind": data["kind"], "target": data["target"],
            "events": "all" if data["all_events"] else list(data["events"]), "slack": data["slack"],
        }

    def add_service_errors(self, exc):
        for field, messages in exc.message_dict.items():
            for message in messages:
                self.add_error(None if field == "__all__" or field not in self.fields else field, message)
