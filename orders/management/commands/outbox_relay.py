"""The outbox relay process (Procfile `relay`): publishes committed order events to their subscribers."""

import signal

from django.conf import settings
from django.core.management.base import BaseCommand

from orders import events


class Command(BaseCommand):
    help = "Publish outbox events to their subscribers, polling for new ones, until SIGTERM/SIGINT."

    def handle(self, *args, **options):
        stopping = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stopping.append(True))
        poll, batch = settings.OUTBOX_RELAY_POLL_SECONDS, settings.OUTBOX_RELAY_BATCH
        self.stdout.write(f"outbox relay ready (poll {poll * 1000:.0f} ms, batch {batch})", ending="\n")
        self.stdout.flush()
        events.outbox_relay(poll_seconds=poll, batch=batch, stop=lambda: bool(stopping))
