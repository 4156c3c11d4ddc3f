"""The support judge: containment, the embedding path, and its calibration against the hand labels."""

from __future__ import annotations

import pytest

from assistant.support import DEFAULT_THRESHOLD, SupportJudge
from eval.calibrate import calibrate_support, load_support_labels, support_agreement


def test_containment_ignores_citation_markers_width_and_punctuation() -> None:
    judge = SupportJudge()
    clause = "成立福州市服务业扩大开放综合试点工作专班，专班下设办公室（市服开办），设在市商务局。"
    assert judge.containment("市服开办设在市商务局。[五（一）]", clause) == 1.0
    assert judge.containment("市服开办设在市商务局", clause.replace("市商务局", "ＸＹ")) < 1.0
    assert judge.containment("", clause) == 0.0


def test_without_an_embedder_only_containment_counts() -> None:
    judge = SupportJudge(threshold=0.8)
    v = judge.run("专班下设办公室，设在市商务局。", ["专班下设办公室（市服开办），设在市商务局。", "无关的条款。"])
    assert v.supported and v.best == 0 and v.scores[1] < 0.2
    assert not judge.run("外籍医生可以开设医院。", ["支持境外高校参与护理专业人才培养。"]).supported
    none = judge.run("任意一句。", [])
    assert not none.supported and none.best == -1


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError):
        SupportJudge(threshold=0.0)
    with pytest.raises(ValueError):
        SupportJudge().run("  ", ["x"])


def test_the_labels_are_balanced_and_complete() -> None:
    labels = load_support_labels()
    assert len(labels) >= 50
    assert {"id", "sentence", "clause_text", "supported"} <= set(labels[0])
    n_true = sum(bool(lb["supported"]) for lb in labels)
    assert 0.3 < n_true / len(labels) < 0.7
    assert any(not lb["sentence"][:1].isascii() for lb in labels) and any(lb["sentence"][:1].isascii()
                                                                          for lb in labels)


@pytest.mark.model
def test_an_english_paraphrase_is_supported_through_the_embedding(built_assistant) -> None:
    judge = SupportJudge(built_assistant.embedder)
    clause = "成立福州市服务业扩大开放综合试点工作专班，专班下设办公室（市服开办），设在市商务局，负责日常统筹协调。"
    sentence = "The plan allows Sino-foreign cooperative non-profit hospitals and elderly-care institutions."
    assert judge.containment("The pilot office sits within the Bureau of Commerce.", clause) < 0.1
    assert judge.run("The pilot office sits within the Fuzhou Municipal Bureau of Commerce and handles "
                     "day-to-day coordination.", [clause]).score > judge.run(sentence, [clause]).score


@pytest.mark.model
def test_default_threshold_is_the_calibrated_one_and_agrees_with_the_labels(built_assistant) -> None:
    labels = load_support_labels()
    judge = SupportJudge(built_assistant.embedder)
    assert judge.threshold == DEFAULT_THRESHOLD
    agreement = support_agreement(judge, labels)
    # Calibrated on these labels (python -m eval.calibrate --only support): 0.75 accuracy, kappa 0.50.
    assert agreement["accuracy"] >= 0.70
    assert agreement["kappa"] >= 0.4
    calibrated = calibrate_support(judge, labels)["best_threshold_only"]
    assert calibrated["threshold"] == pytest.approx(DEFAULT_THRESHOLD)
    assert calibrated["accuracy"] == pytest.approx(agreement["accuracy"], abs=1e-3)
    # The calibration is not just fitting noise: held-out accuracy stays above the majority class.
    assert calibrated["leave_one_out_accuracy"] > 0.6


def test_a_changed_number_is_never_supported() -> None:
    judge = SupportJudge()
    clause = "服务业增加值达到1.06万亿元，年均复合增长6%，服务业实际使用外资占全市实际使用外资比重达75%。"
    assert judge.run("服务业增加值达到1.06万亿元。[二2]", [clause]).supported
    wrong = judge.run("服务业增加值达到1.6万亿元。[二2]", [clause])
    assert not wrong.supported and wrong.score == 0.0
    assert SupportJudge.number_conflict("年均增长8%", clause)
    assert not SupportJudge.number_conflict("年均复合增长6%", clause)
    assert not SupportJudge.number_conflict("没有数字的句子", clause)
    assert not SupportJudge.number_conflict("1. 「年均复合增长6%」[二2]", clause)  # a list marker is not a claim
