"""The GraphQL API exercised by an independent client: PyPI `gql` (requests and websockets
transports), against a live `scimdesk serve`. Run by scripts/graphql-client.sh.

Reads, pages, mutates, is refused, and subscribes, as someone who does not use our code would.
Exits non-zero on any surprise."""

import asyncio
import json
import subprocess
import sys

from gql import Client, gql
from gql.transport.exceptions import TransportQueryError
from gql.transport.requests import RequestsHTTPTransport
from gql.transport.websockets import WebsocketsTransport

url, read_token, admin_token, cli = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]


def client(token):
    transport = RequestsHTTPTransport(
        url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    # Introspection works for authenticated tokens: gql checks every document against it.
    return Client(transport=transport, fetch_schema_from_transport=True)


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}")
        sys.exit(1)
    print(f"ok: {what}")


reader = client(read_token)
admin = client(admin_token)

org = reader.execute(gql("{ organization { name } }"))
check(org["organization"]["name"] == "gqlclient", "organization")

conns = reader.execute(gql("{ connections { name kind hasSecret health { state pending } } }"))
names = sorted(c["name"] for c in conns["connections"])
check(names == ["ehr", "idp"], f"connections {names}")
ehr = next(c for c in conns["connections"] if c["name"] == "ehr")
check(ehr["hasSecret"] is True and "target-secret" not in json.dumps(conns), "a secret is stored but not shown")

# Pages of users, following cursors.
seen, after = [], None
while True:
    page = reader.execute(
        gql(
            "query($after: String) { users(first: 2, after: $after) "
            "{ edges { node { userName } } pageInfo { hasNextPage endCursor } } }"
        ),
        variable_values={"after": after},
    )["users"]
    seen += [e["node"]["userName"] for e in page["edges"]]
    if not page["pageInfo"]["hasNextPage"]:
        break
    after = page["pageInfo"]["endCursor"]
check(len(seen) == 5, f"five users across pages: {seen}")

ops = reader.execute(gql("{ operations(first: 3) { totalCount edges { node { action state } } } }"))
check(ops["operations"]["totalCount"] >= 5, "operations with a total")

# A read token may not pause; an admin may.
pause = gql('mutation { pauseConnection(connection: "ehr", reason: "gql client") { state } }')
try:
    reader.execute(pause)
    check(False, "a read token is refused a pause")
except TransportQueryError as e:
    check(e.errors[0]["extensions"]["code"] == "FORBIDDEN", "a read token is refused a pause")


async def subscribed_pause():
    transport = WebsocketsTransport(
        url=url.replace("http://", "ws://"),
        init_payload={"Authorization": f"Bearer {read_token}"},
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
    )
    async with Client(transport=transport) as session:
        sub = gql('subscription { healthChanged(connection: "ehr") { name health { state } } }')
        events = session.subscribe(sub)

        async def pause_soon():
            await asyncio.sleep(0.5)
            await asyncio.to_thread(admin.execute, pause)

        task = asyncio.create_task(pause_soon())
        async for event in events:
            if event["healthChanged"]["health"]["state"] == "paused":
                break
        await task


asyncio.run(asyncio.wait_for(subscribed_pause(), timeout=30))
check(True, "a subscriber sees the admin's pause")

audit = admin.execute(
    gql('{ auditEvents(first: 20, filter: {action: "connection.pause"}) { edges { node { actor actorKind } } } }')
)
check(
    any(
        e["node"]["actor"] == "gql-admin" and e["node"]["actorKind"] == "api"
        for e in audit["auditEvents"]["edges"]
    ),
    "the pause is audited as the admin token",
)

# The API and the CLI return the same users for the same question.
cli_users = json.loads(subprocess.check_output(cli + ["users", "list", "--search", "nurse", "--json"]))
api_users = reader.execute(gql('{ users(search: "nurse") { edges { node { userName } } } }'))
check(
    sorted(u["user"]["user_name"] for u in cli_users)
    == sorted(e["node"]["userName"] for e in api_users["users"]["edges"]),
    "the API and the CLI agree on a search",
)
print("gql client: all checks passed")
