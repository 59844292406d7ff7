"""bench-tracking's `--layer pubsub`: the platform's settings with channels-redis' pub/sub channel layer, which
publishes a group message once per group and fans it out in each process's memory (the default layer pushes one
copy per subscribed socket into Redis and pops each back with its own round trip)."""

from config.settings import *  # noqa: F403
from config.settings import REDIS_URL

CHANNEL_LAYERS = {
    "default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer", "CONFIG": {"hosts": [REDIS_URL]}}
}
