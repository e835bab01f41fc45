"""A study config checked against its JSON schema, with the schema's defaults filled in, and a failure told in
one line.

Snakemake's `validate` stops at a schema error and prints the whole schema and the whole config after it: a
misspelt key costs a thousand lines, the key in the first of them. `validate` here fills in the defaults exactly as
Snakemake's `validate(set_default=True)` does (the same jsonschema extension), picks the error a person should
read first (an unexpected key before the required key it was probably meant to be), and raises a ConfigError that
names the key's path (`recipes.cifar-resnet.lr`), what the schema expects there and, for a misspelt key or value,
the nearest valid one. Like elth.config it imports no torch: the DAG runs it on every snakemake call.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError, best_match, by_relevance
from jsonschema.protocols import Validator

from elth.errors import ConfigError

# Where one slip breaks two rules of the same object (`seedz` is unexpected and `seeds` is missing), the
# unexpected key is the one to name: the missing key is its suggestion.
_RELEVANCE = by_relevance(strong=frozenset({"additionalProperties", "propertyNames"}))
_TYPES = {"object": "a mapping", "array": "a list", "string": "a string", "integer": "an integer",
          "number": "a number", "boolean": "true or false", "null": "null"}
_BOUNDS = {"minimum": "at least", "exclusiveMinimum": "above", "maximum": "at most", "exclusiveMaximum": "below"}


def _with_defaults(base: type[Validator]) -> type[Validator]:
    """`base` that sets every absent property's `default` before checking an object, as Snakemake's
    validate(set_default=True) does, so the study reads the same config as it would through Snakemake. Unlike
    Snakemake's, it leaves a non-mapping alone (to be reported as the wrong type) instead of crashing on it, and
    copies each default, so no two places of the config share one list or mapping."""
    check_properties = base.VALIDATORS["properties"]

    def set_defaults(validator: Validator, properties: dict[str, Any], instance: Any,
                     schema: dict[str, Any]) -> Iterator[ValidationError]:
        if validator.is_type(instance, "object"):
            for name, subschema in properties.items():
                if "default" in subschema:
                    instance.setdefault(name, copy.deepcopy(subschema["default"]))
        yield from check_properties(validator, properties, instance, schema)

    return validators.extend(base, {"properties": set_defaults})


def validate(config: dict[str, Any], schema_path: str | Path) -> None:
    """Fill in `config`'s defaults from the schema at `schema_path`, or raise a ConfigError describing the most
    telling way the config breaks it."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    error = best_match(_with_defaults(Draft202012Validator)(schema).iter_errors(config), key=_RELEVANCE)
    if error is not None:
        raise ConfigError(describe(error))


def describe(error: ValidationError) -> str:
    """One line for a schema error: `config key <path>: <what is wrong>`, with what the schema expects there."""
    where = list(error.absolute_path)
    if error.validator == "additionalProperties":
        known = list(error.schema.get("properties", {}))
        key = next(k for k in error.instance if k not in known)
        return _unknown_key([*where, key], known)
    if "propertyNames" in error.absolute_schema_path:  # a key outside a closed set, such as a model family
        return _unknown_key([*where, error.instance], error.validator_value)
    if error.validator == "required":
        missing = next(k for k in error.validator_value if k not in error.instance)
        return f"config key {key_path([*where, missing])}: missing; it is required"
    expected = _expectation(error)
    if expected is None:
        return f"config key {key_path(where)}: {error.message}"
    guess = _nearest(error.instance, map(str, error.validator_value)) if error.validator == "enum" else ""
    return f"config key {key_path(where)}: expected {expected}, got {_shown(error.instance)}{guess}"


def key_path(parts: Iterable[str | int]) -> str:
    """`recipes.cifar-resnet.lr`, `ett[0].pairs`: where a key sits in the config, as a person would write it."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def _unknown_key(path: list[str | int], known: Iterable[Any]) -> str:
    names = [str(k) for k in known]
    return f"config key {key_path(path)}: unknown key{_nearest(path[-1], names)}; expected one of: {', '.join(names)}"


def _nearest(value: Any, candidates: Iterable[str]) -> str:
    """` (did you mean 'seeds'?)` for the candidate a misspelt `value` is closest to, or nothing."""
    if not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value, list(candidates), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _expectation(error: ValidationError) -> str | None:
    """What the keyword that failed asks for, in words, or None where jsonschema's own message says it better."""
    keyword, value = error.validator, error.validator_value
    if keyword == "oneOf":
        branches = [_summary(branch) for branch in value]
        return None if None in branches else " or ".join(b for b in branches if b is not None)
    if keyword in ("enum", "const"):
        return _summary({keyword: value})
    if keyword == "type" or keyword in _BOUNDS:  # the type and every bound, so `expected` is the whole story
        return _summary({k: error.schema[k] for k in ("type", *_BOUNDS) if k in error.schema})
    if keyword == "pattern":
        return f"a string matching {value}"
    if keyword in ("minLength", "minItems"):
        return f"at least {value} {'character' if keyword == 'minLength' else 'item'}{'s' * (value != 1)}"
    if keyword == "uniqueItems":
        return "no item twice"
    return None


def _types(names: str | list[str]) -> str:
    return " or ".join(_TYPES[name] for name in ([names] if isinstance(names, str) else names))


def _summary(schema: dict[str, Any]) -> str | None:
    """A schema of one value in words (`'epoch'`, `an integer at least 1`, `a number below 1`), or None for one
    that says more than its type, bounds or values."""
    if "const" in schema:
        return repr(schema["const"])
    if "enum" in schema:
        return "one of " + ", ".join(map(str, schema["enum"]))
    bounds = [f"{_BOUNDS[k]} {schema[k]}" for k in _BOUNDS if k in schema]
    if "type" not in schema and not bounds:
        return None
    return " and ".join([_types(schema.get("type", "number")) + (" " + bounds[0] if bounds else ""), *bounds[1:]])


def _shown(value: Any) -> str:
    """The offending value, cut short if it is a whole section."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
