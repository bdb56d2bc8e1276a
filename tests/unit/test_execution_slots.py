"""The slots of a warm replica: exact limit, arrival order, bounded queue."""

import asyncio

import pytest

from rayline.runtime.execution_slots import ExecutionSlots


def run(coroutine):
    return asyncio.run(coroutine)


def test_at_most_limit_hold_a_slot_and_waiters_get_theirs_in_arrival_order():
    async def scenario():
        slots = ExecutionSlots(limit=2, max_waiting=3)
        places = [slots.reserve() for _ in range(5)]
        assert [p.done() for p in places] == [True, True, False, False, False]
        assert (slots.running, slots.waiting) == (2, 3)
        assert slots.reserve() is None  # the queue is full: refused at once

        slots.release(duration_s=1.0)
        assert [p.done() for p in places[2:]] == [True, False, False]  # the first waiter, no other
        assert (slots.running, slots.waiting) == (2, 2)
        slots.release()
        slots.release()
        assert all(p.done() for p in places) and (slots.running, slots.waiting) == (2, 0)
        slots.release()
        slots.release()
        assert (slots.running, slots.waiting) == (0, 0)

    run(scenario())


def test_no_queue_refuses_as_soon_as_every_slot_is_busy():
    async def scenario():
        slots = ExecutionSlots(limit=1, max_waiting=0)
        assert slots.reserve().done()
        assert slots.reserve() is None

    run(scenario())


def test_a_cancelled_waiter_gives_its_turn_or_its_slot_to_the_next():
    async def scenario():
        slots = ExecutionSlots(limit=1, max_waiting=5)
        await slots.wait(slots.reserve())
        first, second = slots.reserve(), slots.reserve()
        waiting = asyncio.ensure_future(slots.wait(first))
        await asyncio.sleep(0)
        waiting.cancel()  # cancelled while waiting: skipped when a slot frees
        with pytest.raises(asyncio.CancelledError):
            await waiting
        slots.release()
        assert second.done() and slots.running == 1

        third = slots.reserve()
        handed = asyncio.ensure_future(slots.wait(third))
        await asyncio.sleep(0)
        slots.release()  # handed to `third`...
        handed.cancel()  # ...whose caller is cancelled before it resumes: the slot comes back
        with pytest.raises(asyncio.CancelledError):
            await handed
        assert (slots.running, slots.waiting) == (0, 0)

    run(scenario())


def test_retry_after_follows_the_mean_duration_per_slot():
    async def scenario():
        slots = ExecutionSlots(limit=2, max_waiting=0)
        assert slots.retry_after_s() == 1
        for _ in range(40):
            slots.reserve()
            slots.release(duration_s=10.0)
        assert slots.retry_after_s() == 5

    run(scenario())


def test_bad_limits_are_refused():
    with pytest.raises(ValueError):
        ExecutionSlots(limit=0, max_waiting=1)


def test_a_place_given_back_frees_its_slot_or_its_place_in_the_queue():
    async def scenario():
        slots = ExecutionSlots(limit=1, max_waiting=1)
        held = slots.reserve()  # a slot, at once: its caller's body turns out too large
        queued = slots.reserve()
        assert slots.reserve() is None  # full: refused before any body is read
        slots.give_back(queued)  # a waiter whose input was refused leaves the queue
        slots.give_back(held)  # and the slot goes to nobody: it is free again
        assert (slots.running, slots.waiting) == (0, 0)
        again = slots.reserve()
        assert again is not None and again.done() and slots.running == 1

    run(scenario())


def test_a_call_being_read_holds_no_slot_and_is_refused_only_when_all_is_taken():
    async def scenario():
        slots = ExecutionSlots(limit=1, max_waiting=1)
        assert slots.admit() and slots.admit()  # two slow uploads: room for both (a slot, a place)
        assert not slots.admit()  # a third is refused before its body is read
        quick = slots.reserve()  # a call without a body (through a handle) still finds the slot free
        assert quick is not None and quick.done() and slots.running == 1
        slots.leave()  # one upload's body was refused
        late = slots.reserve(admitted=True)  # the other is read: it waits, as there was room for it
        assert late is not None and not late.done() and slots.waiting == 1
        slots.release()
        assert late.done() and (slots.running, slots.waiting, slots.reading) == (1, 0, 0)

    run(scenario())
