"""Settings of the test process (pyproject: DJANGO_SETTINGS_MODULE): config.settings, with a key of its own.

Tests run with DEBUG off, like production, where config.settings refuses the development SECRET_KEY. A run
started without a key gets a fresh one here, before the settings read it; the Procfile processes the tests start
inherit it with the environment (and load config.settings itself), so tokens minted in the tests are valid there.
"""

import os
import secrets

os.environ.setdefault("SECRET_KEY", f"test-{secrets.token_urlsafe(40)}")

from config.settings import *  # noqa: F403
