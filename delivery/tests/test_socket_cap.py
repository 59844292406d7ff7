"""The per-user socket cap in Redis (delivery/hot.py) across real OS processes: a process that dies without giving
its sockets back stops counting once its lease runs out; one that renews keeps counting."""

import multiprocessing
import time

from delivery import hot

USER = 7


def in_another_process(*calls) -> list:
    """The calls' results from a forked process (a process id of its own), which then exits giving nothing back."""
    context = multiprocessing.get_context("fork")
    results = context.SimpleQueue()
    child = context.Process(target=lambda: results.put([call() for call in calls]))
    child.start()
    answer = results.get()
    child.join(10)
    assert child.exitcode == 0
    return answer


def test_a_dead_processs_sockets_stop_counting_after_its_lease_a_live_ones_do_not(settings):
    settings.WEBSOCKET_MAX_SOCKETS_PER_USER = 2
    settings.WEBSOCKET_PROCESS_LEASE_SECONDS = 1.0
    # given one socket counted by a process that died, and one by this process
    assert in_another_process(lambda: hot.user_sockets_open(USER)) == [True]
    assert hot.user_sockets_open(USER)
    assert not hot.user_sockets_open(USER)  # the dead one's still counts within its lease

    # when a lease and a half passes, with this process renewing every third of it
    started = time.monotonic()
    while time.monotonic() - started < 1.5:
        time.sleep(1 / 3)
        hot.process_lease_renew()

    # then for a third process the dead one's socket no longer counts, and this one's still does
    assert in_another_process(lambda: hot.user_sockets_open(USER), lambda: hot.user_sockets_open(USER)) == [True, False]


def test_a_socket_given_back_twice_never_makes_room_for_more(settings):
    settings.WEBSOCKET_MAX_SOCKETS_PER_USER = 1
    assert hot.user_sockets_open(USER)
    hot.user_socket_closed(USER)
    hot.user_socket_closed(USER)

    assert hot.user_sockets_open(USER)
    assert not hot.user_sockets_open(USER)
