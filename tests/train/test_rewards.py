"""Rule rewards for GRPO on hand-made completions."""

from __future__ import annotations

from services.train import rewards


def as_messages(texts):
    return [[{"role": "assistant", "content": t}] for t in texts]


def test_regex_reward_on_plain_and_conversational_completions():
    reward = rewards.make({"type": "regex", "pattern": r"^\d+分"})
    assert reward([None, None], ["85分，结构清楚", "很好"]) == [1.0, 0.0]
    assert reward([None], as_messages(["90分"])) == [1.0]
    assert reward.__name__ == "regex"


def test_exact_answer_reads_the_answer_line_or_the_last_number():
    reward = rewards.make({"type": "exact_answer"})
    completions = ["计算过程：3+4=7，答案：7", "结果是 12", "答案是 8。", "不会"]
    assert reward([None] * 4, completions, reference=["7", "12", "答案：7", "3"]) == [1.0, 1.0, 0.0, 0.0]
    assert reward([None], ["answer: 2.50"], reference=["2.5"]) == [1.0]


def test_word_count_counts_cjk_characters_and_latin_words():
    assert rewards.count_words("我喜欢 machine learning!") == 5
    reward = rewards.make({"type": "word_count", "target_words": 10})
    assert reward([None, None, None], ["一二三四五六七八九十", "一二三四五", ""]) == [1.0, 0.5, 0.0]
    from_reference = rewards.make({"type": "word_count", "target_words": 0})
    assert from_reference([None], ["one two three four"], reference=["a b c d"]) == [1.0]


def test_json_fields_rewards_valid_objects_and_present_fields():
    reward = rewards.make({"type": "json_fields", "required_fields": ["甲方", "乙方"]})
    completions = [
        '{"甲方": "张三", "乙方": "李四"}',
        '结果：{"甲方": "张三", "乙方": ""}',
        "{not json",
        "[1, 2]",
    ]
    assert reward([None] * 4, completions) == [1.0, 0.75, 0.0, 0.0]
