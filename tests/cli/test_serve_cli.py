"""`tuneforge serve …` and `tuneforge chat` as a user meets them: deploy, talk, look at the calls
and their statistics, give feedback, turn it into data, and one-line errors for mistakes."""

from __future__ import annotations

import json

from tests.cli.test_cli import one_line_error, tf  # noqa: F401 - the fixture
from tuneforge import Client


def test_serve_transcript(tf, client: Client, base_model: str) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    ref = "tiny-base/" + base_model.rsplit("/", 1)[-1]
    shown = tf("serve", "create", "bot", "--model", ref, "--max-tokens", "6", "--watch").stdout
    assert "ready" in shown and "1/1 ready" in shown
    assert "bot" in tf("serve", "list").stdout

    # The playground: every line is a turn; /reset starts over.
    talk = tf("chat", "bot", "--max-tokens", "5", stdin="你好\n/reset\n请批改作文\n").stdout
    calls = json.loads(tf("--json", "serve", "logs", "bot").stdout)
    assert len(calls) == 2 and all(c["status"] == "OK" for c in calls)
    second, first = calls  # newest first
    assert [m["content"] for m in second["messages"]] == ["请批改作文"], "/reset dropped the first turn"
    assert talk == first["answer"] + "\n" + second["answer"] + "\n", "each answer streamed, then a new line"

    assert (
        "recorded feedback"
        in tf(
            "serve",
            "feedback",
            f"bot/{first['id']}",
            "--rating",
            "down",
            "--correction",
            "得分：45/60",
            "--tag",
            "wrong-score",
        ).stdout
    )
    bad = tf("serve", "badcases", "bot").stdout
    assert first["id"] in bad and "corrected" in bad and second["id"] not in bad
    stats = json.loads(tf("--json", "serve", "stats", "bot").stdout)
    assert int(stats["total"]["requests"]) == 2 and stats["total"]["latency_ms_p50"] > 0
    assert "total" in tf("serve", "stats", "bot").stdout
    flowed = tf("serve", "backflow", "bot", "--dataset", "fixes").stdout
    assert "1 rows from bot" in flowed
    assert next(iter(client.data.rows("fixes/1")))["messages"][-1]["content"] == "得分：45/60"

    updated = tf("serve", "update", "bot", "--max-concurrent", "2").stdout
    assert "max concurrent" in updated and " 2 " in updated
    assert "give --model, --replicas or --max-concurrent" in tf("serve", "update", "bot", code=2).stderr
    error = one_line_error(tf("serve", "show", "nope", code=1))
    assert "deployments/nope does not exist" in error
    error = one_line_error(tf("serve", "feedback", f"bot/{first['id']}", "--rating", "sideways", code=1))
    assert "rating 'sideways'" in error
    assert "deleted bot" in tf("serve", "delete", "bot").stdout
    assert json.loads(tf("--json", "serve", "list").stdout) == []
