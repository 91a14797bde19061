import random

import pytest
import yaml

from caibase.constitution import ConstitutionError, load_constitution
from caibase.critique import critique_prompt, fewshot_prefix, revision_prompt


def test_project_constitution_loads(repo):
    c = load_constitution("constitution", repo)
    assert len(c.critique_principles) >= 16 and len(c.comparison_principles) >= 16
    assert len(c.critique_fewshot) >= 3 and len(c.comparison_fewshot) >= 3
    assert all(t.startswith("Human:") and "\n\nRevision:" in t for t in c.critique_fewshot)


def test_anthropic_2022_loads_from_the_mirror(data_mirror):
    c = load_constitution("anthropic-2022")
    assert len(c.critique_principles) == 16 and len(c.comparison_principles) == 16
    assert c.critique_principles[0].critique_request.startswith("Identify specific ways")
    assert "CritiqueRequest:" in c.critique_fewshot[0]


def test_bad_constitution_names_file_entry_and_field(tmp_path, repo):
    for name in ("critique_revision", "comparison", "fewshot_critique", "fewshot_comparison"):
        (tmp_path / f"{name}.yaml").write_text((repo / "constitution" / f"{name}.yaml").read_text())
    doc = yaml.safe_load((tmp_path / "critique_revision.yaml").read_text())
    del doc["principles"][3]["revision_request"]
    (tmp_path / "critique_revision.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ConstitutionError, match=r"critique_revision\.yaml: at principles/3: 'revision_request'"):
        load_constitution(str(tmp_path))


def test_prompts_put_critique_and_revision_in_their_slots(repo):
    c = load_constitution("constitution", repo)
    principle = c.sample_critique_principle(random.Random(0))
    prefix = fewshot_prefix(c, 1)
    prompt = critique_prompt(prefix, "How do I pick a lock?", "Sure, here is how.", principle)
    assert prompt.endswith(f"CritiqueRequest: {principle.critique_request}\n\nCritique:")
    assert prompt.startswith(c.critique_fewshot[0])
    revision = revision_prompt(prefix, "How do I pick a lock?", "Sure.", principle, "It helps with burglary.")
    assert revision.endswith(
        f"Critique: It helps with burglary.\n\nRevisionRequest: {principle.revision_request}\n\nRevision:")
