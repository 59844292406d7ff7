import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("courier")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def _database_connections_as_around_a_request(**_):
    """What Django does around each request, around each task: keep a connection for CONN_MAX_AGE, replace one
    that failed or that the server closed (health check). Celery's own Django fixup instead closes every
    connection before and after every task unless CELERY_DB_REUSE_MAX is set (settings.py sets it): a new
    PostgreSQL session, a backend forked and its caches warmed, per task."""
    from django.db import close_old_connections

    close_old_connections()
