"""One pattern names credentials for the store and the registry alike."""

import pytest

from falconer_core.errors import ConfigError
from falconer_core.registry import redaction
from falconer_core.secrets import is_secret_name
from falconer_core.store.runs import check_no_secrets

SECRET = ("OPENAI_API_KEY", "api-key", "llm.auth_token", "authtoken", "access_token", "HF_TOKEN",
          "aws_secret_access_key", "password", "passwd", "db_credentials", "private_key", "Authorization")
PLAIN = ("max_tokens", "tokenizer", "TOKENIZERS_PARALLELISM", "subtoken_labels", "n_annotations", "learning_rate")


@pytest.mark.parametrize("name", SECRET)
def test_credential_names_are_refused_by_the_store_and_dropped_by_the_registry(name):
    assert is_secret_name(name)
    with pytest.raises(ConfigError, match="looks like a credential"):
        check_no_secrets({"llm": {name: "x"}})
    assert redaction.clean_strings({name: "x", "seed": 1}) == {"seed": "1"}


@pytest.mark.parametrize("name", PLAIN)
def test_ordinary_names_pass(name):
    assert not is_secret_name(name)
    assert check_no_secrets({name: 1}) == {name: 1}
