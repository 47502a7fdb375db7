"""The model registry without training: what a registered model says it is, and aliases that follow the
workspace's models (``pcn aliases``)."""

import pytest

from pcn.schema import VariantConfig
from pcn.tracking.registry import ensure_registered_model, model_description, model_tags, registered_name

CARD = {"name": "mnist5k", "channels": 1, "image_size": 28, "num_classes": 10}


@pytest.fixture
def client(tmp_path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")


def test_the_registered_model_says_what_it_is(client):
    v = VariantConfig(arch="lscat", nonlinearity="modulus")
    name = registered_name("modulus")
    ensure_registered_model(client, name, model_description("modulus", v, CARD), model_tags("modulus", v, CARD))
    ensure_registered_model(client, name, model_description("modulus", v, CARD), model_tags("modulus", v, CARD))
    model = client.get_registered_model(name)  # registered twice: one model, described once
    text = model.description
    for words in ("Phase Collapse in Neural Networks", "ICLR 2022", "modulus", "lscat", "mnist5k", "uint8 pixels"):
        assert words in text
    assert "'current'" in text and "'seed-<s>'" in text and "pcn test-split --seed" in text
    assert model.tags == {
        "variant": "modulus",
        "architecture": "lscat",
        "nonlinearity": "modulus",
        "data.name": "mnist5k",
    }


def test_pcn_aliases_warns_when_the_registry_does_not_follow_the_workspace_and_repairs_it(
    tmp_path, monkeypatch, capsys, client, default_params
):
    """The state after an experiment and ``dvc checkout`` back: the workspace holds the baseline's models, the
    aliases still point at the experiment's versions."""
    import torch

    from pcn.cli.main import main

    from project import write_params

    default_params.update(variants=["modulus"], seeds=[0, 1])
    write_params(tmp_path, default_params)
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / ".dvc").mkdir()
    name = registered_name("modulus")
    ensure_registered_model(client, name)
    version = {}
    for key in ("base-0", "base-1", "exp-0", "exp-1"):  # versions 1..4, found by their resume key
        created = client.create_model_version(name, source="file:///nowhere", tags={"pcn.resume_key": key})
        version[key] = str(created.version)
    for seed in (0, 1):
        (tmp_path / f"models/modulus-{seed}").mkdir(parents=True)
        torch.save({"resume_key": f"base-{seed}"}, tmp_path / f"models/modulus-{seed}/model.pt")
    for alias, key in (("current", "exp-0"), ("seed-0", "exp-0"), ("seed-1", "base-1")):
        client.set_registered_model_alias(name, alias, version[key])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", client.tracking_uri)

    assert main(["aliases"]) == 1
    err = capsys.readouterr().err
    assert f"pcn-modulus@current points at version {version['exp-0']}, the workspace's model is version 1" in err
    assert "pcn-modulus@seed-0" in err and "seed-1" not in err and "--repair" in err
    assert str(client.get_model_version_by_alias(name, "current").version) == version["exp-0"]  # a check moves nothing

    assert main(["aliases", "--repair"]) == 0
    for alias, key in (("current", "base-0"), ("seed-0", "base-0"), ("seed-1", "base-1")):
        assert str(client.get_model_version_by_alias(name, alias).version) == version[key], alias
    capsys.readouterr()
    assert main(["aliases"]) == 0 and "follow the workspace" in capsys.readouterr().out
