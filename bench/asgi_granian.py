"""The Procfile's ASGI router for granian's ASGI interface (benchmark only).

granian's `receive` returns an awaitable that is not a coroutine, and a2wsgi's HTTP bridge hands `receive()` to
`asyncio.run_coroutine_threadsafe`, which takes coroutines only: request bodies failed with "A coroutine object is
required". Wrapping `receive` in a coroutine is all it takes.
"""

from config.asgi import application as courier


async def application(scope, receive, send):
    async def receive_coroutine():
        return await receive()

    return await courier(scope, receive_coroutine, send)
