"""The one exception type for errors a user can cause; the CLI prints it as one line, exit 2."""


class ReproError(Exception):
    """A bad recipe, data line, model source or option: message says what, where and what to do."""


class ConfigError(ReproError):
    """A recipe file or override that cannot be read or does not fit the schema."""


class DataError(ReproError):
    """A data file or record that cannot be read or does not fit the record schema."""


class ModelError(ReproError):
    """A model or tokenizer that cannot be loaded as the recipe asks."""
