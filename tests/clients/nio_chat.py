"""Two matrix-nio clients chat through hearth: room, messages both ways, typing, receipts.

Each check prints one line; the last line is "N passed, N failed".
"""

import asyncio
import sys
import uuid

import nio

failures = []
passed = 0


def check(name, condition, detail=""):
    global passed
    if condition:
        passed += 1
        print(f"ok   {name}")
    else:
        failures.append(name)
        print(f"FAIL {name} {detail}")


async def sync_until(client, predicate, rounds=10):
    """Long-polls until `predicate(response)` holds; returns the matching response or None."""
    for _ in range(rounds):
        response = await client.sync(timeout=5000)
        if not isinstance(response, nio.SyncResponse):
            return None
        if predicate(response):
            return response
    return None


def timeline_bodies(response, room_id):
    room = response.rooms.join.get(room_id)
    if room is None:
        return []
    return [event.body for event in room.timeline.events if isinstance(event, nio.RoomMessageText)]


def ephemeral_of(response, room_id, kind):
    room = response.rooms.join.get(room_id)
    if room is None:
        return []
    return [event for event in room.ephemeral if isinstance(event, kind)]


async def main(homeserver):
    suffix = uuid.uuid4().hex[:6]
    alice = nio.AsyncClient(homeserver, f"chat-alice-{suffix}")
    bob = nio.AsyncClient(homeserver, f"chat-bob-{suffix}")
    for client, name in ((alice, "alice"), (bob, "bob")):
        response = await client.register(f"chat-{name}-{suffix}", "chat-password")
        check(f"{name} registers", isinstance(response, nio.RegisterResponse), response)
        await client.sync(timeout=0)

    response = await alice.room_create(name="Hearth chat", invite=[bob.user_id])
    check("alice creates a room and invites bob", isinstance(response, nio.RoomCreateResponse), response)
    room_id = response.room_id

    response = await sync_until(bob, lambda r: room_id in r.rooms.invite)
    check("bob's sync shows the invite", response is not None)
    response = await bob.join(room_id)
    check("bob joins", isinstance(response, nio.JoinResponse), response)
    await sync_until(alice, lambda r: True, rounds=1)

    response = await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "hello bob"})
    check("alice sends", isinstance(response, nio.RoomSendResponse), response)
    response = await sync_until(bob, lambda r: "hello bob" in timeline_bodies(r, room_id))
    check("bob receives alice's message", response is not None)

    response = await bob.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "hi alice"})
    check("bob replies", isinstance(response, nio.RoomSendResponse), response)
    reply_id = response.event_id
    response = await sync_until(alice, lambda r: "hi alice" in timeline_bodies(r, room_id))
    check("alice receives bob's reply", response is not None)

    response = await bob.room_typing(room_id, typing_state=True, timeout=10000)
    check("bob starts typing", isinstance(response, nio.RoomTypingResponse), response)
    response = await sync_until(
        alice, lambda r: any(bob.user_id in e.users for e in ephemeral_of(r, room_id, nio.TypingNoticeEvent))
    )
    check("alice sees bob typing", response is not None)

    response = await alice.room_read_markers(room_id, fully_read_event=reply_id, read_event=reply_id)
    check("alice marks the reply read", isinstance(response, nio.RoomReadMarkersResponse), response)
    response = await sync_until(
        bob,
        lambda r: any(
            receipt.event_id == reply_id and receipt.user_id == alice.user_id
            for event in ephemeral_of(r, room_id, nio.ReceiptEvent)
            for receipt in event.receipts
        ),
    )
    check("bob sees alice's read receipt", response is not None)

    for client in (alice, bob):
        await client.close()


asyncio.run(main(sys.argv[1]))
print(f"{passed} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
