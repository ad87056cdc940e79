"""The pure checks of a new job (`services.train.checks`) and the one step count, on facts built by
hand: what the other services would have said, without any service."""

from __future__ import annotations

import pytest

from services.kit.errors import InvalidArgument
from services.train import checks
from services.train.facts import BaseFacts, DatasetFacts, JobFacts
from services.train.spec import spec_from_proto
from tuneforge.train.v1 import training_job_pb2


def spec_of(**fields: object) -> object:
    job = training_job_pb2.TrainingJob(
        base_model="projects/p/models/m/versions/1",
        training_data=[{"dataset_version": "projects/p/datasets/d/versions/1", "sampling_rate": 1.0}],
        **{k: v for k, v in fields.items() if k not in ("hyperparameters", "method_parameters")},
    )
    job.hyperparameters.batch_size = 8
    for key, value in dict(fields.get("hyperparameters") or {}).items():
        setattr(job.hyperparameters, key, value)
    for key, value in dict(fields.get("method_parameters") or {}).items():
        if key == "rewards":
            job.method_parameters.rewards.extend(training_job_pb2.RewardFunction(**r) for r in value)
        else:
            setattr(job.method_parameters, key, value)
    return spec_from_proto(job)


def facts_of(
    rows: int = 60, *, prompt_min: int = 10, percentiles: list[float] | None = None, limit: int = 512
) -> JobFacts:
    insight = {
        "rows": rows,
        "sequence_tokens": {"count": rows},
        "prompt_sequence_tokens": {"count": rows, "min": prompt_min},
        "sequence_tokens_percentiles": percentiles or [float(v) for v in range(100, 201)],
    }
    return JobFacts(
        base=BaseFacts(
            "projects/p/models/m/versions/1",
            {"max_position_embeddings": limit},
            "projects/p/models/m/versions/1",
        ),
        training=[
            DatasetFacts("projects/p/datasets/d/versions/1", "sft", rows, planned_rows=rows, insight=insight)
        ],
        metrics={"bleu4", "rouge_l"},
    )


def test_planned_steps_follow_each_method_and_the_world() -> None:
    sft = spec_of(hyperparameters={"epochs": 2})
    assert checks.planned_steps(sft, 40) == 10  # ceil(40 / 8) x 2
    assert checks.planned_steps(sft, 40, world=2) == 6  # ceil(40 / 16) x 2
    grpo = spec_of(
        method="grpo",
        hyperparameters={"epochs": 1},
        method_parameters={"num_generations": 4, "rewards": [{"type": "regex", "pattern": "x"}]},
    )
    assert checks.planned_steps(grpo, 40) == 20  # 8 completions a step = 2 prompts of 4


def test_held_out_rows_match_the_data_services_split() -> None:
    assert [checks.held_out(n, r) for n, r in ((60, 0.1), (2, 0.01), (1, 0.5), (10, 0.0))] == [6, 1, 0, 0]


def test_rows_over_a_length_come_from_the_percentiles() -> None:
    insight = {"rows": 200, "sequence_tokens_percentiles": [float(v) for v in range(0, 101)]}
    assert checks.rows_over(insight, 89) == 22  # percentiles 90..100 of 100 above 89: 11% of 200
    assert checks.rows_over(insight, 100) == 0 and checks.rows_over({}, 5) == 0


def test_the_job_check_counts_steps_and_rows_over_the_length() -> None:
    spec = spec_of(validation_split=0.1, hyperparameters={"epochs": 2})
    counted = checks.job(spec, facts_of(rows=60))
    assert counted == {"total_steps": 14, "overlength": 0}  # 54 rows: ceil(54 / 8) x 2
    short = spec_of(hyperparameters={"max_sequence_length": 150})
    assert checks.job(short, facts_of(rows=100))["overlength"] == 50


@pytest.mark.parametrize(
    ("hyperparameters", "field", "fragment"),
    [
        (
            {"max_sequence_length": 4096},
            "training_job.hyperparameters.max_sequence_length",
            "beyond the model",
        ),
        (
            {"max_sequence_length": 10},
            "training_job.hyperparameters.max_sequence_length",
            "no room for an answer",
        ),
        (
            {"checkpoint_interval_steps": 999},
            "training_job.hyperparameters.checkpoint_interval_steps",
            "no checkpoint",
        ),
    ],
)
def test_impossible_lengths_and_intervals_name_their_field(
    hyperparameters: dict, field: str, fragment: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        checks.job(spec_of(hyperparameters=hyperparameters), facts_of())
    assert caught.value.violations[0].field == field and fragment in caught.value.violations[0].description


def test_an_unknown_evaluation_metric_is_refused() -> None:
    spec = spec_of(
        auto_evaluation={"dataset_version": "projects/p/datasets/e/versions/1", "metrics": ["perplexity"]}
    )
    with pytest.raises(InvalidArgument) as caught:
        checks.job(spec, facts_of())
    assert caught.value.violations[0].field == "training_job.auto_evaluation.metrics"


def test_rewards_that_need_references_refuse_rows_without_them() -> None:
    spec = spec_of(
        method="grpo", method_parameters={"num_generations": 4, "rewards": [{"type": "exact_answer"}]}
    )
    data = DatasetFacts(
        "projects/p/datasets/q/versions/1",
        "prompt_only",
        3,
        insight={"rows_without_reference": 2, "rows_without_reference_examples": ["q.jsonl:1", "q.jsonl:3"]},
    )
    with pytest.raises(InvalidArgument) as caught:
        checks.references(spec, data, "training_job.training_data[0]")
    description = caught.value.violations[0].description
    assert "2 rows" in description and "q.jsonl:1, q.jsonl:3" in description
    regex = spec_of(
        method="grpo",
        method_parameters={"num_generations": 4, "rewards": [{"type": "regex", "pattern": "x"}]},
    )
    checks.references(regex, data, "training_job.training_data[0]")  # needs no reference


def test_the_enum_and_the_deprecated_string_may_not_disagree() -> None:
    with pytest.raises(InvalidArgument) as caught:
        spec_of(training_method=training_job_pb2.TRAINING_METHOD_DPO, method="kto")
    assert caught.value.violations[0].field == "training_job.training_method"
    assert spec_of(training_method=training_job_pb2.TRAINING_METHOD_DPO).method == "dpo"
    assert spec_of(method="kto", hyperparameters={"batch_size": 4}).method == "kto"


def test_a_job_no_row_of_which_fits_is_refused_at_creation_with_the_numbers() -> None:
    facts = facts_of(percentiles=[float(v) for v in range(3000, 4010, 10)], prompt_min=2500, limit=2048)
    with pytest.raises(InvalidArgument) as refused:
        checks.job(spec_of(), facts)
    message = refused.value.violations[0].description
    assert refused.value.violations[0].field == "training_job.hyperparameters.max_sequence_length"
    assert "the shortest is 3000 tokens and the context is 2048" in message and "2048 positions" in message
    # Truncating the answer cannot help a prompt that alone fills the context: said so.
    with pytest.raises(InvalidArgument) as refused:
        checks.job(spec_of(hyperparameters={"truncate_overlength": True}), facts)
    message = refused.value.violations[0].description
    assert "cannot help when the prompt alone is too long" in message and "prompt_truncation" in message
    # Cutting prompts is the way: the job is accepted, the over-length rows counted.
    spec = spec_of(hyperparameters={"truncate_overlength": True, "prompt_truncation": "middle"})
    assert checks.job(spec, facts)["overlength"] == 60
    # A row within the insight's allowance of the limit is left to the worker's exact measure.
    near = facts_of(percentiles=[2100.0] * 101, limit=2048)
    assert checks.job(spec_of(), near)["overlength"] == 60


def test_prompt_truncation_is_checked() -> None:
    with pytest.raises(InvalidArgument) as refused:
        spec_of(hyperparameters={"prompt_truncation": "right"})
    assert "choose none, left, middle" in refused.value.violations[0].description
    with pytest.raises(InvalidArgument) as refused:
        spec_of(hyperparameters={"prompt_truncation": "left"})
    assert "needs truncate_overlength" in refused.value.violations[0].description


def test_kto_with_a_single_label_is_refused() -> None:
    facts = facts_of()
    facts.training[0].kind = "unpaired_preference"
    facts.training[0].insight["labels"] = {"true": 60, "false": 0}
    with pytest.raises(InvalidArgument) as refused:
        checks.job(spec_of(method="kto", training_method=training_job_pb2.TRAINING_METHOD_KTO), facts)
    message = refused.value.violations[0].description
    assert "every one of the 60 rows is labelled desirable (true)" in message and "undesirable" in message
    facts.training[0].insight["labels"] = {"true": 50, "false": 10}
    assert checks.job(spec_of(method="kto", training_method=training_job_pb2.TRAINING_METHOD_KTO), facts)
