"""A real client (matrix-nio) against hearth: register, log in, profile, devices, logout.

Each check prints one line; the last line is "N passed, N failed".
"""

import asyncio
import sys

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


async def main(homeserver):
    # An account created by the admin CLI through the running server's admin socket.
    cli = nio.AsyncClient(homeserver, "@cli-user:localhost")
    response = await cli.login("admin-made-pw", device_name="nio test")
    check("login as CLI-created user", isinstance(response, nio.LoginResponse), response)
    await cli.close()

    # Registration through the client library (UIAA dummy flow).
    client = nio.AsyncClient(homeserver, "nio-user")
    response = await client.register("nio-user", "nio-password", device_name="nio register")
    check("register", isinstance(response, nio.RegisterResponse), response)
    await client.close()

    client = nio.AsyncClient(homeserver, "@nio-user:localhost")
    response = await client.login("nio-password", device_name="nio laptop")
    check("login", isinstance(response, nio.LoginResponse), response)
    check("login returns our user id", getattr(response, "user_id", None) == "@nio-user:localhost", response)

    response = await client.whoami()
    check("whoami", getattr(response, "user_id", None) == "@nio-user:localhost", response)

    response = await client.get_profile("@nio-user:localhost")
    check("initial profile", isinstance(response, nio.ProfileGetResponse) and response.displayname == "nio-user", response)

    response = await client.set_displayname("Nio User")
    check("set display name", isinstance(response, nio.ProfileSetDisplayNameResponse), response)
    response = await client.get_displayname("@nio-user:localhost")
    check("read display name back", getattr(response, "displayname", None) == "Nio User", response)

    response = await client.set_avatar("mxc://localhost/avatar")
    check("set avatar", isinstance(response, nio.ProfileSetAvatarResponse), response)
    response = await client.get_profile()
    check(
        "read profile back",
        isinstance(response, nio.ProfileGetResponse)
        and response.displayname == "Nio User"
        and response.avatar_url == "mxc://localhost/avatar",
        response,
    )

    response = await client.devices()
    check(
        "list devices",
        isinstance(response, nio.DevicesResponse) and any(d.display_name == "nio laptop" for d in response.devices),
        response,
    )

    response = await client.logout()
    check("logout", isinstance(response, nio.LogoutResponse), response)
    response = await client.whoami()
    check("token is revoked after logout", isinstance(response, nio.WhoamiError), response)
    await client.close()


asyncio.run(main(sys.argv[1]))
print(f"{passed} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
