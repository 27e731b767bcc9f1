"""Two matrix-nio clients share media through hearth: alice uploads an image and a file and
sends them as m.image and m.file; bob downloads both byte-identical and gets thumbnails of the
sizes he asks for.

Each check prints one line; the last line is "N passed, N failed".
"""

import asyncio
import io
import os
import struct
import sys
import uuid
import zlib

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


def png(width, height):
    """An RGB PNG with a gradient, made with the standard library only."""
    rows = b"".join(
        b"\x00"
        + bytes(
            channel
            for x in range(width)
            for channel in (x * 255 // width, y * 255 // height, (x + y) % 256)
        )
        for y in range(height)
    )

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def png_size(data):
    """(width, height) of a PNG, or None if it is not one."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    return struct.unpack(">II", data[16:24])


async def sync_until(client, predicate, rounds=10):
    for _ in range(rounds):
        response = await client.sync(timeout=5000)
        if not isinstance(response, nio.SyncResponse):
            return None
        if predicate(response):
            return response
    return None


async def main(homeserver):
    suffix = uuid.uuid4().hex[:6]
    alice = nio.AsyncClient(homeserver, f"media-alice-{suffix}")
    bob = nio.AsyncClient(homeserver, f"media-bob-{suffix}")
    for client, name in ((alice, "alice"), (bob, "bob")):
        response = await client.register(f"media-{name}-{suffix}", "media-password")
        check(f"{name} registers", isinstance(response, nio.RegisterResponse), response)
        await client.sync(timeout=0)

    image = png(640, 480)
    document = os.urandom(300 * 1024)
    uploaded, _ = await alice.upload(
        io.BytesIO(image), content_type="image/png", filename="sunset.png", filesize=len(image)
    )
    check("alice uploads an image", isinstance(uploaded, nio.UploadResponse), uploaded)
    image_uri = uploaded.content_uri
    uploaded, _ = await alice.upload(
        io.BytesIO(document),
        content_type="application/octet-stream",
        filename="notes.bin",
        filesize=len(document),
    )
    check("alice uploads a file", isinstance(uploaded, nio.UploadResponse), uploaded)
    file_uri = uploaded.content_uri

    response = await alice.room_create(name="Hearth media", invite=[bob.user_id])
    check("alice creates a room", isinstance(response, nio.RoomCreateResponse), response)
    room_id = response.room_id
    await bob.sync(timeout=0)
    response = await bob.join(room_id)
    check("bob joins", isinstance(response, nio.JoinResponse), response)

    image_content = {
        "msgtype": "m.image",
        "body": "sunset.png",
        "url": image_uri,
        "info": {"mimetype": "image/png", "size": len(image), "w": 640, "h": 480},
    }
    file_content = {
        "msgtype": "m.file",
        "body": "notes.bin",
        "url": file_uri,
        "info": {"mimetype": "application/octet-stream", "size": len(document)},
    }
    for content in (image_content, file_content):
        response = await alice.room_send(room_id, "m.room.message", content)
        check(f"alice sends {content['msgtype']}", isinstance(response, nio.RoomSendResponse), response)

    seen = {}

    def both_seen(response):
        room = response.rooms.join.get(room_id)
        for event in room.timeline.events if room else []:
            if isinstance(event, nio.RoomMessageImage):
                seen["image"] = event.url
            elif isinstance(event, nio.RoomMessageFile):
                seen["file"] = event.url
        return len(seen) == 2

    check("bob sees both messages", await sync_until(bob, both_seen) is not None, seen)

    response = await bob.download(mxc=seen.get("image", image_uri))
    check("bob downloads the image", isinstance(response, nio.MemoryDownloadResponse), response)
    if isinstance(response, nio.MemoryDownloadResponse):
        check("the image is byte-identical", response.body == image)
        check("the image keeps its type", response.content_type == "image/png", response.content_type)
        check("the image keeps its name", response.filename == "sunset.png", response.filename)
    response = await bob.download(mxc=seen.get("file", file_uri))
    check("bob downloads the file", isinstance(response, nio.MemoryDownloadResponse), response)
    if isinstance(response, nio.MemoryDownloadResponse):
        check("the file is byte-identical", response.body == document)

    server_name, media_id = image_uri[len("mxc://") :].split("/", 1)
    for width, height, method in ((320, 240, nio.ResizingMethod.scale), (96, 96, nio.ResizingMethod.crop)):
        response = await bob.thumbnail(server_name, media_id, width, height, method=method)
        ok = isinstance(response, nio.ThumbnailResponse)
        check(f"bob gets a {width}x{height} {method.value} thumbnail", ok, response)
        if ok:
            size = png_size(response.body)
            check(f"the thumbnail is {width}x{height}", size == (width, height), size)

    for client in (alice, bob):
        await client.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
    print(f"{passed} passed, {len(failures)} failed")
    sys.exit(1 if failures else 0)
