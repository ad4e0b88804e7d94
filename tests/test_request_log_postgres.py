"""The request log on a real PostgreSQL server, selected by URL."""

from __future__ import annotations

import openai
import sqlalchemy as sa

from rankgate.store.tables import normalise_url
from tests.conftest import SMOLLM


def test_gateway_logs_requests_to_postgresql(start_gateway, postgres_url, smollm_path):
    gw = start_gateway(env={"RANKGATE_STORE_URL": postgres_url}, name="pg-gateway")
    client = openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
    ok = client.chat.completions.with_raw_response.create(
        model=SMOLLM, messages=[{"role": "user", "content": "Hi"}], max_tokens=3)
    try:
        client.chat.completions.create(model="missing", messages=[{"role": "user",
                                                                  "content": "Hi"}])
    except openai.NotFoundError as e:
        missing_id = e.response.headers["x-request-id"]
    gw.settle()
    engine = sa.create_engine(normalise_url(postgres_url))
    with engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(sa.text(
            "select id, status, model, output_tokens, cost_usd from request_log"))}
    engine.dispose()
    good = rows[ok.headers["x-request-id"]]
    assert good.status == 200 and good.model == SMOLLM
    assert good.output_tokens == ok.parse().usage.completion_tokens and good.cost_usd > 0
    assert rows[missing_id].status == 404
    assert not (gw.home / "rankgate.db").exists()
