"""The support judge: the fitted model's behaviour, its held-out figures, the split, and the fallback rule."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from assistant.support import (
    RESOURCE,
    RULE_THRESHOLD,
    TEXT_ONLY,
    SupportJudge,
    SupportModelFile,
    aligned_negations,
    negator_count,
    numbers,
)
from eval.calibrate import load_support_labels, support_agreement
from eval.fit_support import PAIRS, agreement, clause_groups, load_jsonl, split_pairs

PROCUREMENT = "支持外资企业依法平等参与政府采购活动。"
TARGETS = "服务业增加值达到1.06万亿元，年均复合增长6%，服务业实际使用外资占全市实际使用外资比重达75%。"
NURSING = "支持境外高校在榕以多种形式试点参与护理专业人才培养。"
OFFICE = "成立福州市服务业扩大开放综合试点工作专班，专班下设办公室（市服开办），设在市商务局，负责日常统筹协调。"


@pytest.fixture(scope="module")
def use_m3():
    from retrieval.embeddings import make_embedder

    return make_embedder("use-m3")


@pytest.fixture(scope="module")
def model_judge(use_m3) -> SupportJudge:
    return SupportJudge(use_m3)


# ------------------------------------------------------------------ the model file
def test_the_model_file_is_loaded_with_its_threshold() -> None:
    model_file = SupportModelFile.load()
    assert model_file is not None, "run: python -m eval.fit_support"
    assert {m.embedder for m in model_file.models} >= {"use-m3", TEXT_ONLY}
    judge = SupportJudge()
    assert judge.model is not None and judge.model.embedder == TEXT_ONLY
    assert judge.threshold == judge.model.threshold
    for m in model_file.models:
        assert len(m.features) == len(m.mean) == len(m.scale) == len(m.coef)
        assert 0.0 < m.threshold < 1.0
    assert SupportJudge(threshold=0.9).threshold == 0.9


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError):
        SupportJudge(threshold=0.0)
    with pytest.raises(ValueError):
        SupportJudge().run("  ", ["x"])
    none = SupportJudge().run("任意一句。", [])
    assert not none.supported and none.best == -1 and none.scores == []


# ------------------------------------------------------------- real behaviour
@pytest.mark.parametrize("sentence", ["外资企业不得参与政府采购活动。", "政府采购禁止外资企业参与。"])
def test_a_negated_sentence_is_not_supported(sentence: str) -> None:
    judge = SupportJudge()
    assert judge.run("外资企业可以依法平等参与政府采购。", [PROCUREMENT]).supported
    assert not judge.run(sentence, [PROCUREMENT]).supported
    assert not judge.run("方案禁止境外高校参与护理专业人才培养。", [NURSING]).supported


def test_a_wrong_number_is_not_supported() -> None:
    judge = SupportJudge()
    assert judge.run("服务业增加值达到1.06万亿元。[二2]", [TARGETS]).supported
    assert not judge.run("服务业增加值达到1.6万亿元。[二2]", [TARGETS]).supported
    assert not judge.run("服务业实际使用外资占比达到85%。", [TARGETS]).supported
    assert not judge.run("Services value added is to reach 1.6 trillion yuan.", [TARGETS]).supported


def test_a_paraphrase_with_synonyms_is_supported() -> None:
    judge = SupportJudge()
    # 海外 = 境外, 大学 = 高校, 福州 = 榕, 方式 = 形式: no long shared strings
    v = judge.run("方案支持海外大学在福州以多种方式参与护理人才培养试点。", ["无关的条款。", NURSING])
    assert v.supported and v.best == 1 and v.scores[0] < judge.threshold


@pytest.mark.model
def test_the_embedding_model_judges_the_same_cases(model_judge: SupportJudge) -> None:
    assert model_judge.model is not None and model_judge.model.embedder == "use-m3"
    assert model_judge.run("方案支持海外大学在福州以多种方式参与护理人才培养试点。", [NURSING]).supported
    assert not model_judge.run("外资企业不得参与政府采购活动。", [PROCUREMENT]).supported
    assert not model_judge.run("服务业增加值达到1.6万亿元。", [TARGETS]).supported
    # the runner's form of a cited clause (title and heading path in front) still supports a quote
    headed = f"《福州市服务业扩大开放综合试点实施方案》五/（一）：{OFFICE}"
    assert model_judge.run("专班办公室设在市商务局，负责日常统筹协调。[五（一）]", [headed]).supported


@pytest.mark.model
def test_an_english_paraphrase_is_supported(model_judge: SupportJudge) -> None:
    good = model_judge.run("The pilot office sits within the Fuzhou Municipal Bureau of Commerce and handles "
                           "day-to-day coordination.", [OFFICE])
    off_topic = model_judge.run("The plan allows Sino-foreign cooperative non-profit hospitals and elderly-care "
                                "institutions.", [OFFICE])
    assert good.supported and not off_topic.supported and good.score > off_topic.score
    assert model_judge.run("The plan lets foreign-invested enterprises take part in government procurement on an "
                           "equal footing.", [PROCUREMENT]).supported
    assert model_judge.run("Services value added is to reach 1.06 trillion yuan.", [TARGETS]).supported


@pytest.mark.model
def test_the_recorded_heldout_agreement_is_what_the_judge_reproduces(model_judge: SupportJudge) -> None:
    model_file = SupportModelFile.load()
    assert model_file is not None and model_judge.model is not None
    held = set(model_file.heldout_ids)
    pairs = [p for p in load_jsonl(PAIRS) if p["id"] in held]
    assert len(pairs) == len(held)
    pred = [model_judge.run(p["sentence"], [p["clause_text"]]).supported for p in pairs]
    now = agreement(pred, [bool(p["supported"]) for p in pairs])
    recorded = model_judge.model.heldout["overall"]
    assert now == recorded
    errors = sorted(p["id"] for p, y in zip(pairs, pred, strict=True) if y != p["supported"])
    assert errors == sorted(model_judge.model.heldout["errors"])
    # the eval report's agreement uses the same held-out pairs
    assert support_agreement(model_judge, load_support_labels())["accuracy"] == recorded["accuracy"]


# ----------------------------------------------------------------------- split
def test_the_split_is_deterministic_stratified_and_grouped_by_clause() -> None:
    pairs = load_jsonl(PAIRS)
    train, test = split_pairs(pairs)
    again = split_pairs(pairs)[1]
    assert [p["id"] for p in test] == [p["id"] for p in again]
    model_file = SupportModelFile.load()
    assert model_file is not None and sorted(p["id"] for p in test) == model_file.heldout_ids
    assert 0.3 < len(test) / len(pairs) < 0.4
    kinds, held_kinds = Counter(p["kind"] for p in pairs), Counter(p["kind"] for p in test)
    for kind, n in kinds.items():
        assert abs(held_kinds[kind] - 0.35 * n) <= 1.5, kind
    groups = clause_groups(pairs)
    assert not {groups[p["clause_text"]] for p in train} & {groups[p["clause_text"]] for p in test}


# ---------------------------------------------------------------- feature parts
def test_numbers_negators_and_aligned_negations() -> None:
    assert [(v, pct) for v, pct, _ in numbers("处五万元以上二十万元以下罚款")] == [(50000.0, False), (200000.0, False)]
    assert [(v, pct) for v, pct, _ in numbers("力争两成以上试点任务")] == [(20.0, True)]
    assert numbers("推进一体化，统一标准，到2028年") == []  # 一 of a word and a year are not quantities
    assert negator_count("持续不断推进无纸化，不少于10项") == 0
    assert negator_count("不得擅自提供，未取得许可证") == 2
    assert aligned_negations("允许中外合作举办营利性医疗机构", "允许中外合作举办非营利性医疗机构") == 1


# ------------------------------------------------------------- the fallback rule
def test_without_the_model_file_the_old_rule_judges(tmp_path: Path) -> None:
    judge = SupportJudge(model_path=tmp_path / "missing.json")
    assert judge.model is None and judge.threshold == RULE_THRESHOLD
    clause = "成立福州市服务业扩大开放综合试点工作专班，专班下设办公室（市服开办），设在市商务局。"
    assert judge.containment("市服开办设在市商务局。[五（一）]", clause) == 1.0
    assert judge.containment("", clause) == 0.0
    v = judge.run("专班下设办公室，设在市商务局。", [clause, "无关的条款。"])
    assert v.supported and v.best == 0 and v.scores[1] < 0.2
    wrong = judge.run("服务业增加值达到1.6万亿元。[二2]", [TARGETS])
    assert not wrong.supported and wrong.score == 0.0
    assert SupportJudge.number_conflict("年均增长8%", TARGETS)
    assert not SupportJudge.number_conflict("1. 「年均复合增长6%」[二2]", TARGETS)  # a list marker is not a claim
    assert RESOURCE.name == "support-judge.json"


def test_english_words_the_clause_does_not_render_count_as_novel() -> None:
    from assistant.support import novel_english_words, text_features

    clause = "放宽增值电信业务外资准入。"
    right = novel_english_words("The plan relaxes foreign access to value-added telecom.", clause)  # 放宽, 准入, 增值电信业务
    wrong = novel_english_words("The plan fully lifts ownership caps on basic telecom services.", clause)  # 基础, 所有权
    assert right < 0.5 < wrong
    assert novel_english_words("", clause) == 0.0
    assert text_features("放宽增值电信业务外资准入", clause)["novel_en"] == 0.0  # Chinese sentences: not this feature
    assert text_features("The plan fully lifts ownership caps on basic telecom services.", clause)["novel_en"] == wrong
