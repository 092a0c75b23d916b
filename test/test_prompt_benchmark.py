"""Prompt evaluation: scores against known truth, negative controls that must lose (and a
check that a control equal to the real thing does not), and ``hv2r prompt-eval`` end to end
on rendered demos with tiny encoders."""

import json
import math
import os

os.environ.setdefault("MUJOCO_GL", "osmesa")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy.stats import t as student_t  # noqa: E402

from hv2r_ros.cli import main  # noqa: E402
from hv2r_ros.core.errors import ConfigError  # noqa: E402
from hv2r_ros.core.prompt.benchmark import (  # noqa: E402
    CONTROLS, DEMO, OTHER_TASK, RANDOM_ENCODER, SHUFFLED, TRUE_KEYFRAMES, DemoTruth, Prompt,
    demo_truth, evaluate_demo, goal_progress, paired_difference, prompt_from_embeddings,
    score_prompt, summarize, t_quantile_975,
)
from hv2r_ros.core.prompt.build import build_task_spec  # noqa: E402
from onnx_fixtures import encoder_spec, make_encoder, save  # noqa: E402

RATE_HZ = 10.0
TOLERANCE_S = 0.5


def synthetic_demo(rng, scale, dim=16, noise=0.02):
    """Rests at 0, 1, 2, 3 along a random direction, ``scale`` s long (the last 1.5 times),
    joined by 0.5 s ramps; truth: keyframes where each rest begins, progress = the state / 3."""
    direction = rng.normal(size=dim)
    direction /= np.linalg.norm(direction)
    knots_s = np.cumsum([0.0, scale, 0.5, scale, 0.5, scale, 0.5, 1.5 * scale])
    values = np.array([0.0, 0.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0])
    times = np.arange(0.0, knots_s[-1] + 1e-9, 1.0 / RATE_HZ)
    state = np.interp(times, knots_s, values)
    embeddings = state[:, None] * direction + rng.normal(0.0, noise, (len(times), dim))
    truth = DemoTruth(knots_s[[2, 4, 6]], TRUE_KEYFRAMES, state / 3.0,
                      np.clip((times - knots_s[1]) / (knots_s[6] - knots_s[1]), 0, 1))
    return embeddings.astype(np.float32), times, truth


def evaluate_synthetic(count=8, random_is_demo=False):
    rng = np.random.default_rng(7)
    demos = [synthetic_demo(rng, 1.0 + 0.6 * i) for i in range(count)]
    prompts = [prompt_from_embeddings(e, t) for e, t, _ in demos]
    per_video = []
    for i, (e, t, truth) in enumerate(demos):
        random = e if random_is_demo else rng.normal(size=e.shape).astype(np.float32)
        random_prompt = prompts[i] if random_is_demo else prompt_from_embeddings(random, t)
        per_video.append(evaluate_demo(
            e, t, prompts[i], truth, other_prompt=prompts[(i + 1) % count],
            random_embeddings=random, random_prompt=random_prompt, rng=rng,
            tolerance_s=TOLERANCE_S))
    return per_video


def test_the_demo_prompt_finds_the_known_structure():
    for scores in evaluate_synthetic():
        demo = scores[DEMO]
        assert demo.f1 == 1.0 and all(demo.hits.values())
        assert all(abs(error) <= 0.1 + 1e-9 for error in demo.nearest_error_s.values())
        assert demo.spearman_progress > 0.95 and demo.spearman_time > 0.9


def test_every_control_scores_clearly_worse_on_a_demo_with_known_structure():
    summary = summarize(evaluate_synthetic(), margin=0.1)
    assert summary["passed"]
    for control in CONTROLS:
        for metric in ("f1", "spearman_progress"):
            comparison = summary["comparisons"][control][metric]
            assert comparison["clearly_worse"] and comparison["ci_low"] > 0.1, (control, metric)
    conditions = summary["conditions"]
    assert conditions[DEMO]["recall_by_label"] == {label: 1.0 for label in TRUE_KEYFRAMES}
    assert abs(conditions[SHUFFLED]["spearman_progress"]) < 0.2
    # A goal in another direction: moving along this demo goes away from it.
    assert conditions[OTHER_TASK]["spearman_progress"] < -0.5
    assert conditions[OTHER_TASK]["f1"] < 0.2 and conditions[RANDOM_ENCODER]["f1"] < 0.2


def test_a_control_that_equals_the_demo_is_not_clearly_worse_and_the_evaluation_fails():
    summary = summarize(evaluate_synthetic(random_is_demo=True), margin=0.1)
    comparison = summary["comparisons"][RANDOM_ENCODER]
    assert comparison["f1"]["mean"] == 0.0 and not comparison["f1"]["clearly_worse"]
    assert not comparison["spearman_progress"]["clearly_worse"]
    assert summary["comparisons"][SHUFFLED]["spearman_progress"]["clearly_worse"]
    assert not summary["passed"]


def test_paired_difference_is_the_student_t_interval():
    rng = np.random.default_rng(3)
    demo, control = rng.uniform(0.5, 1.0, 12), rng.uniform(0.0, 0.5, 12)
    result = paired_difference(demo, control, margin=0.1)
    d = demo - control
    low, high = student_t.interval(0.95, d.size - 1, loc=d.mean(),
                                   scale=d.std(ddof=1) / math.sqrt(d.size))
    assert result.ci_low == pytest.approx(low, abs=1e-3)
    assert result.ci_high == pytest.approx(high, abs=1e-3)
    assert result.clearly_worse == (low > 0.1)
    assert not paired_difference(demo, control, margin=high + 0.01).clearly_worse
    single = paired_difference([1.0], [0.0], margin=0.1)
    assert not single.clearly_worse and math.isnan(single.ci_low)
    with pytest.raises(ValueError):
        paired_difference([1.0, 0.5], [0.0], margin=0.1)
    with pytest.raises(ValueError):
        paired_difference([1.0, math.nan], [0.0, 0.0], margin=0.1)


@pytest.mark.parametrize("df", [1, 2, 5, 29, 30, 31, 45, 100, 1000])
def test_t_quantile_matches_scipy(df):
    assert t_quantile_975(df) == pytest.approx(student_t.ppf(0.975, df), abs=1e-3)


def test_goal_progress_is_zero_at_the_start_and_one_on_the_goal():
    start, goal = np.zeros(4), np.array([2.0, 0.0, 0.0, 0.0])
    e = np.array([start, [1.0, 0, 0, 0], goal, [4.0, 0, 0, 0]])
    assert goal_progress(e, goal, start) == pytest.approx([0.0, 0.5, 1.0, 0.0])
    same = goal_progress(e, goal, goal)  # start on the goal: still ordered by distance
    assert np.all(np.isfinite(same)) and same[2] > same[1] > same[0]


def test_demo_truth_from_phases_and_object_poses():
    phases = ["start"] * 5 + ["reach"] * 5 + ["carry"] * 10 + ["end"] * 5
    xy = np.zeros((25, 2))
    xy[10:20, 0] = np.linspace(0.0, 0.2, 10)
    xy[20:, 0] = 0.2
    keyframes = [{"label": "start", "time_s": 0.0}, {"label": "grasped", "time_s": 0.9},
                 {"label": "released", "time_s": 1.9}, {"label": "end", "time_s": 2.0}]
    truth = demo_truth(keyframes, phases, xy, 10.0, np.arange(0, 25, 2))
    assert truth.keyframe_times_s.tolist() == [0.9, 1.9, 2.0] and truth.labels == TRUE_KEYFRAMES
    assert truth.progress[0] == 0.0 and truth.progress[-1] == 1.0
    assert np.all(np.diff(truth.progress) >= 0) and np.all(np.diff(truth.time_progress) >= 0)
    assert truth.time_progress[2] == 0.0 and truth.time_progress[-1] == 1.0  # frame 4: start
    with pytest.raises(ValueError, match="released"):
        demo_truth(keyframes[:2] + keyframes[3:], phases, xy, 10.0, [0, 1])
    with pytest.raises(ValueError, match="does not move"):
        demo_truth(keyframes, phases, np.zeros((25, 2)), 10.0, [0, 1])
    with pytest.raises(ValueError, match="sample frames"):
        demo_truth(keyframes, phases, xy, 10.0, [0, 25])


def test_score_prompt_refuses_misaligned_samples():
    e, t, truth = synthetic_demo(np.random.default_rng(0), 1.0)
    with pytest.raises(ValueError, match="embeddings"):
        score_prompt(e[:-1], prompt_from_embeddings(e, t), truth, TOLERANCE_S)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    for name, seed in (("encoder", 0), ("random", 5)):
        (root / name).mkdir()
        save(make_encoder(encoder_spec(input_size=(32, 32)), seed=seed),
             root / name / "encoder.onnx")
    return str(root / "encoder"), str(root / "random")


def test_prompt_eval_end_to_end_on_two_rendered_demos(tiny_models, tmp_path, capsys):
    from hv2r_ros.core.models.runtime import Encoder
    from hv2r_ros.sim.human_demo import HumanDemoInfo

    models, random = tiny_models
    out, work = tmp_path / "eval.json", tmp_path / "videos"
    code = main(["prompt-eval", "--models", models, "--control-models", random, "--videos",
                 "2", "--size", "64", "--out", str(out), "--work-dir", str(work)])
    report = json.loads(out.read_text())
    assert code == (0 if report["passed"] else 1)
    printed = capsys.readouterr().out
    assert "| demo |" in printed and all(f"| {name} |" in printed for name in CONTROLS)
    assert [v["seed"] for v in report["videos"]] == [900000, 900001]
    assert report["settings"]["tolerance_s"] == 0.5
    assert set(report["comparisons"]) == set(CONTROLS)
    encoder = Encoder(f"{models}/encoder.onnx", ["cpu"])
    for video in report["videos"]:
        info = HumanDemoInfo.load(work / f"demo_{video['seed']}.json")
        true = {k["label"]: k["time_s"] for k in info.keyframes}
        assert video["true_keyframes_s"] == [true[label] for label in TRUE_KEYFRAMES]
        spec, _ = build_task_spec(work / f"demo_{video['seed']}.mp4", encoder)
        demo = video["scores"][DEMO]
        assert demo["predicted_keyframes_s"] == pytest.approx(spec.subgoal_times_s.tolist())
        # The shuffled control rebuilds its prompt by the rule the task spec was built with.
        rebuilt = prompt_from_embeddings(spec.embeddings, spec.sample_times_s)
        own = Prompt.from_spec(spec)
        assert np.array_equal(rebuilt.subgoal_times_s, own.subgoal_times_s)
        assert np.allclose(rebuilt.goal, own.goal) and np.allclose(rebuilt.start, own.start)
        for scores in video["scores"].values():
            assert 0.0 <= scores["f1"] <= 1.0 and -1.0 <= scores["spearman_progress"] <= 1.0


@pytest.mark.parametrize("flags, message", [
    (["--seed", "5"], "--seed"), (["--videos", "1"], "--videos"),
    (["--tolerance-s", "-1"], "--tolerance-s")])
def test_prompt_eval_refuses_bad_settings(tiny_models, capsys, flags, message):
    models, random = tiny_models
    assert main(["prompt-eval", "--models", models, "--control-models", random, *flags]) == 2
    assert message in capsys.readouterr().err


def test_prompt_eval_refuses_the_encoder_under_test_as_its_control(tiny_models, capsys):
    models, _ = tiny_models
    assert main(["prompt-eval", "--models", models, "--control-models", models]) == 2
    assert "the encoder under test" in capsys.readouterr().err


def test_random_control_is_exported_for_a_registered_architecture(tmp_path):
    pytest.importorskip("torch")
    from hv2r_ros.cli.prompt_eval import export_random_encoder
    from hv2r_ros.core.models.runtime import Encoder

    with pytest.raises(ConfigError, match="random twin"):
        export_random_encoder(encoder_spec(), 0, tmp_path)  # "tiny-test" is not registered
    spec = encoder_spec(architecture="reference-small", input_size=(32, 32),
                        embedding_size=256)
    encoder = Encoder(export_random_encoder(spec, 1, tmp_path) / "encoder.onnx", ["cpu"])
    assert encoder.spec.architecture == "reference-small"
    assert encoder.spec.input_size == (32, 32) and "random" in encoder.spec.pretrained_on
