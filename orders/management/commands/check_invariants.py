from django.core.management.base import BaseCommand, CommandError

from common import invariants


class Command(BaseCommand):
    help = "Check the platform's invariants (stock, money, deliveries). Exit code 1 when any is violated."

    def handle(self, *args, **options):
        failed = 0
        for name, violations in invariants.run_all().items():
            if violations:
                failed += len(violations)
                self.stdout.write(self.style.ERROR(f"FAIL {name}: {len(violations)} violation(s)"))
                for line in violations[:50]:
                    self.stdout.write(f"  - {line}")
            else:
                self.stdout.write(self.style.SUCCESS(f"ok   {name}"))
        if failed:
            raise CommandError(f"{failed} invariant violation(s)")
