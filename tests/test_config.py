"""The typed config: flat round trip, and every validation error names key, value and rule."""

import json

import pytest

from sigdist.config import (
    Config,
    ConfigError,
    allowed_keys,
    from_assignments,
    from_flat,
    load_json,
    parse_assignment,
    save_json,
)
from sigdist.sizes import WIDTH_PRESETS

PUBLIC_KEYS = ["method", "seed", "data.name", "model.size", "loss.lam", "loss.k", "loss.sigma",
               "train.steps", "train.batch_size"]


def test_public_keys_exist():
    assert set(PUBLIC_KEYS) <= set(allowed_keys())


def test_flat_round_trip_is_identity():
    cfg = Config().replace(**{"method": "gan_si", "loss.lam": 0.5, "model.size": "L", "seed": 3})
    flat = cfg.to_flat()
    assert from_flat(flat) == cfg
    assert flat["loss.lam"] == 0.5 and flat["model.size"] == "L" and flat["method"] == "gan_si"
    assert json.loads(json.dumps(flat)) == flat  # JSON- and MLflow-param-friendly values


def test_config_is_frozen():
    cfg = Config()
    with pytest.raises(AttributeError):
        cfg.loss.lam = 2.0  # type: ignore[misc]


def test_missing_keys_take_defaults_and_int_widens_to_float():
    cfg = from_flat({"method": "gan_si", "loss.lam": 2})
    assert cfg.loss.lam == 2.0 and isinstance(cfg.loss.lam, float)
    assert cfg.train.steps == Config().train.steps


def test_size_presets_set_the_widths_and_widths_make_the_size():
    for size, (width_g, width_d) in WIDTH_PRESETS.items():
        cfg = from_flat({"model.size": size})
        assert (cfg.model.width_g, cfg.model.width_d) == (width_g, width_d)
        assert from_flat({"model.width_g": width_g, "model.width_d": width_d}).model.size == size
    custom = from_assignments(["model.width_g=3", "model.width_d=1.5"])
    assert (custom.model.size, custom.model.width_g, custom.model.width_d) == ("custom", 3.0, 1.5)
    assert from_flat(custom.to_flat()) == custom
    # one width alone keeps the default preset's other width
    alone = from_flat({"model.width_g": 3.0})
    assert alone.model.size == "custom" and alone.model.width_d == WIDTH_PRESETS["M"][1]
    # replace follows: a new size brings its widths, a new width makes the size custom
    assert custom.replace(**{"model.size": "L"}).model.width_g == WIDTH_PRESETS["L"][0]
    assert Config().replace(**{"model.width_d": 7.0}).model.size == "custom"
    assert from_assignments(["model.size=S"], base=custom).model.width_d == WIDTH_PRESETS["S"][1]


def test_widths_that_contradict_the_named_preset_are_refused():
    with pytest.raises(ConfigError, match=r"'model.width_g': got 9.0 with model.size='L'"):
        from_flat({"model.size": "L", "model.width_g": 9.0})
    with pytest.raises(ConfigError, match=r"'custom' without model.width_d"):
        from_flat({"model.size": "custom", "model.width_g": 2.0})


def test_json_round_trip(tmp_path):
    cfg = Config().replace(**{"loss.k": 17})
    path = tmp_path / "config.json"
    save_json(cfg, str(path))
    assert load_json(str(path)) == cfg


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("loss.lam", -0.1, ">= 0"),
        ("loss.k", 0, ">= 1"),
        ("loss.sigma", 0.0, "> 0"),
        ("loss.sigma", -1.0, "> 0"),
        ("loss.sigma", float("nan"), "> 0"),
        ("method", "vae2", "one of sig, gan, gan_si, wgan_gp, wgan_gp_si"),
        ("data.name", "cifar100", "one of gmm25"),
        ("model.size", "XXL", "one of S, M, L, XL, custom"),
        ("train.steps", 1.5, "an integer"),
        ("train.steps", True, "an integer"),
        ("loss.lam", "big", "a finite number"),
        ("loss.lam", float("inf"), "a finite number >= 0 <= 10000"),
        ("loss.sigma", float("inf"), "a finite number > 0 <= 1000"),
        ("train.lr", float("inf"), "a finite number > 0"),
        ("train.lr", float("nan"), "a finite number > 0"),
        ("train.batch_size", 10**9, "an integer >= 1 <= 65536"),
        ("run.eval_samples", 10**12, "<= 2e+06"),
        ("seed", 2**70, "<= 4.29497e+09"),
        ("loss.k", 10**7, "<= 65536"),
        ("model.hidden", 65536, "<= 8192"),  # a 4.3e9-weight layer hung a 24 GB machine
        ("loss.per_dim", 1, "true or false"),
        ("train.beta1", 1.5, "<= 1"),
        ("model.width_g", 0.0, "> 0"),
        ("model.width_d", 65.0, "<= 64"),
        ("model.width_g", "wide", "a finite number"),
    ],
)
def test_bad_values_name_key_value_and_rule(key, value, allowed):
    with pytest.raises(ConfigError) as err:
        from_flat({key: value})
    message = str(err.value)
    assert f"'{key}'" in message
    assert repr(value) in message
    assert allowed in message


def test_unknown_key_lists_allowed_keys():
    expected = r"unknown config key 'loss.lambda'.*allowed keys: .*loss\.lam"
    with pytest.raises(ConfigError, match=expected):
        from_flat({"loss.lambda": 1.0})


def test_non_dict_is_rejected():
    with pytest.raises(ConfigError, match="dict"):
        from_flat([("loss.lam", 1.0)])  # type: ignore[arg-type]


def test_likelihood_must_suit_the_data():
    with pytest.raises(ConfigError, match="loss.likelihood.*allowed: poisson or negbin"):
        from_flat({"data.name": "negbin"})
    with pytest.raises(ConfigError, match="loss.likelihood.*allowed: gaussian"):
        from_flat({"loss.likelihood": "poisson"})
    assert from_flat({"data.name": "negbin", "loss.likelihood": "poisson"}).data.name == "negbin"


def test_command_line_assignments_are_typed():
    assert parse_assignment("loss.k=64") == ("loss.k", 64)
    assert parse_assignment("loss.lam=1e-2") == ("loss.lam", 0.01)
    assert parse_assignment("loss.per_dim=false") == ("loss.per_dim", False)
    assert parse_assignment("method=gan_si") == ("method", "gan_si")
    cfg = from_assignments(["method=gan_si", "loss.lam=0.3"])
    assert cfg.method == "gan_si" and cfg.loss.lam == 0.3


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("loss.k=many", "config key 'loss.k': got 'many'; allowed: an integer >= 1"),
        ("loss.k", "KEY=VALUE"),
        ("nope=1", "unknown config key 'nope'"),
        ("loss.per_dim=maybe", "true or false"),
    ],
)
def test_bad_assignments(text, fragment):
    with pytest.raises(ConfigError) as err:
        from_assignments([text])
    assert fragment in str(err.value)


def test_sizes_that_cannot_fit_in_memory_together_are_refused():
    from_flat({"train.batch_size": 8192, "loss.k": 8192})  # 2^26 pairs: the largest allowed
    with pytest.raises(ConfigError, match=r"'train.batch_size' x 'loss.k': got 65536 x 65536"):
        from_flat({"train.batch_size": 65536, "loss.k": 65536})
    from_flat({"data.name": "gmm25", "run.eval_samples": 2_000_000})
    with pytest.raises(ConfigError, match=r"'run.eval_samples': got 2,000,000 for mnist3; "
                       r"allowed: at most 228,261"):
        from_flat({"data.name": "mnist3", "run.eval_samples": 2_000_000})


def test_replace_of_the_data_set_brings_its_defaults_as_the_command_line_does():
    for keys in ({"data.name": "mnist3"}, {"data.name": "mnist3", "loss.k": 16, "seed": 4}):
        assert Config().replace(**keys) == from_flat(keys)
        assert Config().replace(**keys) == from_assignments([f"{k}={v}" for k, v in keys.items()])
    # what was chosen over the old data set's defaults stays; the rest follows the new one
    chosen = from_flat({"data.name": "gmm25", "loss.k": 32, "train.lr": 1e-3})
    moved = chosen.replace(**{"data.name": "mnist3"})
    assert moved.loss.k == 32 and moved.train.lr == 1e-3
    assert moved.train.batch_size == 64 and moved.method == "gan_si" and moved.loss.lam == 0.1
    assert moved.replace(**{"data.name": "gmm25"}) == chosen  # and back again


def test_lam_is_the_weight_of_l_k_each_method_descends():
    weights = {method: from_flat({"method": method, "loss.lam": 0.3}).loss.lam
               for method in ("sig", "gan", "gan_si", "wgan_gp", "wgan_gp_si", "vae")}
    assert weights == {"sig": 1.0, "gan": 0.0, "gan_si": 0.3, "wgan_gp": 0.0, "wgan_gp_si": 0.3,
                       "vae": 0.0}
    assert from_flat({"method": "gan"}).to_flat()["loss.lam"] == 0.0  # what a run logs


def test_a_new_si_method_takes_its_data_sets_lam_where_the_old_method_fixed_it():
    plain = from_flat({"data.name": "mnist3", "method": "gan"})
    assert plain.loss.lam == 0.0
    assert plain.replace(method="gan_si").loss.lam == 0.1  # mnist3's lam, not the plain 0
    assert plain.replace(method="gan_si", **{"loss.lam": 2.0}).loss.lam == 2.0
    tuned = from_flat({"method": "wgan_gp_si", "loss.lam": 0.3})
    assert tuned.replace(method="gan_si").loss.lam == 0.3  # an -SI method's lam is kept
    assert tuned.replace(method="gan").replace(method="gan_si").loss.lam == 1.0


def test_a_data_root_that_is_a_file_is_refused_at_once(tmp_path):
    """Before: `score --data mnist3 --data-root FILE` trained a classifier, then failed with
    NotADirectoryError; each trial of a study failed the same way, three times."""
    file = tmp_path / "not_a_folder"
    file.write_text("")
    with pytest.raises(ConfigError, match="config key 'data.root': got .* which is a file"):
        from_flat({"data.root": str(file)})
    assert from_flat({"data.root": str(tmp_path / "missing")}).data.root  # made where missing
