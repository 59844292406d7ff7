# The request records when its next attempt is due, not when the last one ran: a parked order's attempt is
# due at its deadline, and the sweep must not take it for forgotten meanwhile.
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("delivery", "0001_initial")]

    operations = [
        migrations.RenameField(model_name="dispatchrequest", old_name="last_attempt_at", new_name="next_attempt_at"),
    ]
