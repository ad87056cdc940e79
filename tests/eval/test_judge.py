"""Judge verdict parsing and MT-Bench pairwise aggregation."""

from __future__ import annotations

from services.kit.judging import aggregate_pairwise, parse_score, parse_verdict, single_prompt


def test_scores_and_verdicts_parse_or_fail_visibly() -> None:
    assert parse_score("Score: 7\nReason: mostly right") == 7
    assert parse_score("评分：10。理由：完全正确") == 10
    assert parse_score("Rating: [[3]]") == 3
    assert parse_score("I think it is quite good") is None
    assert parse_score("Score: 0") is None and parse_score("Score: 11") is None
    assert parse_verdict("[[B]] because it is correct") == "B"
    assert parse_verdict("B is better") is None
    assert "Rubric: be exact" in single_prompt("q", "r", "a", "be exact")


def test_pairwise_counts_ties_when_the_orders_disagree() -> None:
    # model as B (baseline A) | model as A (baseline B)
    model_second = ["[[B]]", "[[A]]", "[[B]]", "[[C]]", "no verdict", "[[B]]"]
    model_first = ["[[A]]", "[[B]]", "[[B]]", "[[C]]", "[[A]]", "[[A]]"]
    result = aggregate_pairwise(model_second, model_first)
    # 1: both prefer the model -> win; 2: both prefer the baseline -> loss; 3: disagree -> tie;
    # 4: both tie -> tie; 5: unparsable -> failure; 6: win.
    assert (result.wins, result.ties, result.losses, result.parse_failures) == (2, 2, 1, 1)
    assert result.adjusted_win_rate == (2 + 0.5 * 2) / 5


def test_rater_agreement() -> None:
    from services.kit.agreement import fleiss_kappa, percent_agreement

    # The classic worked example shape: perfect agreement is 1, chance-level agreement about 0.
    assert fleiss_kappa([["A", "A"], ["B", "B"], ["A", "A"]]) == 1.0
    assert percent_agreement([["A", "A", "B"]]) == 1 / 3
    mixed = [["A", "B"], ["B", "A"], ["A", "A"], ["B", "B"]]
    assert percent_agreement(mixed) == 0.5 and abs(fleiss_kappa(mixed)) < 1e-9
    # By hand: expected agreement 21/81, observed (1/3 + 1 + 1/3) / 3, kappa = 0.4.
    assert abs(fleiss_kappa([["5", "4", "5"], ["2", "2", "2"], ["3", "3", "4"]]) - 0.4) < 1e-12
