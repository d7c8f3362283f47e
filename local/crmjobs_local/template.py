"""Read template.yaml and resolve its intrinsic functions against local physical names.

The local runtime takes every name (tables, queues, state machines, functions, schedules)
from the SAM template itself, so nothing is declared twice: this module parses the
CloudFormation short tags, evaluates parameters and conditions, and resolves Ref, GetAtt,
Sub, Join, If, Select and friends once provisioning has filled in the physical names.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

#: Short tag -> long form key. `!GetAtt A.B` additionally becomes ["A", "B"].
_SHORT_TAGS = {
    "Ref": "Ref",
    "Condition": "Condition",
    **{
        name: f"Fn::{name}"
        for name in (
            "GetAtt",
            "Sub",
            "If",
            "Equals",
            "Not",
            "And",
            "Or",
            "Join",
            "Select",
            "Split",
            "FindInMap",
            "ImportValue",
            "Base64",
            "GetAZs",
            "Cidr",
            "Length",
            "ToJsonString",
        )
    },
}

#: SAM's defaults for a function that sets neither the property nor a global.
DEFAULT_TIMEOUT_SECONDS = 3
DEFAULT_MEMORY_MB = 128


class CloudFormationLoader(yaml.SafeLoader):
    """A SafeLoader that reads `!Ref X` as {"Ref": "X"}, `!Sub s` as {"Fn::Sub": s}, etc."""


def _construct_short_tag(loader: CloudFormationLoader, node: yaml.Node) -> dict[str, Any]:
    short_name = node.tag[1:]
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if short_name == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {_SHORT_TAGS[short_name]: value}


for _tag in _SHORT_TAGS:
    CloudFormationLoader.add_constructor(f"!{_tag}", _construct_short_tag)


def load_template(path: str | Path) -> dict[str, Any]:
    """Parse a CloudFormation/SAM YAML file into plain dicts with long-form intrinsics."""
    with open(path, encoding="utf-8") as handle:
        document = yaml.load(handle, Loader=CloudFormationLoader)  # a SafeLoader subclass
    if not isinstance(document, dict) or "Resources" not in document:
        raise ValueError(f"{path} is not a CloudFormation template (no Resources section)")
    return document


class UnresolvedReference(LookupError):
    """A Ref/GetAtt/ImportValue the local runtime has no value for."""


class _NoValue:
    """`Ref: AWS::NoValue`: the enclosing property or list item disappears."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()

_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


@dataclass
class ResolutionContext:
    """What intrinsic functions resolve against: parameters, conditions, physical names.

    `references` maps a logical id to what `Ref` returns for it; `attributes` maps
    (logical id, attribute) to what `GetAtt` returns. Provisioning fills both as it
    creates resources.
    """

    region: str
    account_id: str
    stack_name: str
    parameters: dict[str, Any] = field(default_factory=dict)
    condition_definitions: dict[str, Any] = field(default_factory=dict)
    mappings: dict[str, Any] = field(default_factory=dict)
    references: dict[str, Any] = field(default_factory=dict)
    attributes: dict[tuple[str, str], Any] = field(default_factory=dict)
    _condition_values: dict[str, bool] = field(default_factory=dict, repr=False)

    @property
    def pseudo_parameters(self) -> dict[str, Any]:
        return {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::StackName": self.stack_name,
            "AWS::StackId": (
                f"arn:aws:cloudformation:{self.region}:{self.account_id}:stack/"
                f"{self.stack_name}/local"
            ),
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NotificationARNs": [],
            "AWS::NoValue": NO_VALUE,
        }

    def ref(self, name: str) -> Any:
        pseudo = self.pseudo_parameters
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.references:
            return self.references[name]
        raise UnresolvedReference(f"Ref {name}: no local value (not provisioned or unknown)")

    def get_att(self, logical_id: str, attribute: str) -> Any:
        try:
            return self.attributes[(logical_id, attribute)]
        except KeyError:
            raise UnresolvedReference(
                f"GetAtt {logical_id}.{attribute}: no local value (not provisioned or unknown)"
            ) from None

    def condition(self, name: str) -> bool:
        if name not in self._condition_values:
            if name not in self.condition_definitions:
                raise UnresolvedReference(f"Condition {name} is not defined in the template")
            self._condition_values[name] = bool(resolve(self.condition_definitions[name], self))
        return self._condition_values[name]


def resolve(value: Any, context: ResolutionContext) -> Any:
    """Evaluate every intrinsic function in `value` (recursively) against `context`."""
    if isinstance(value, list):
        items = (resolve(item, context) for item in value)
        return [item for item in items if item is not NO_VALUE]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, argument),) = value.items()
        intrinsic = _INTRINSICS.get(key)
        if intrinsic is not None:
            return intrinsic(argument, context)
        if key.startswith("Fn::"):
            raise UnresolvedReference(f"{key} is not evaluated by the local runtime")
    resolved = {key: resolve(item, context) for key, item in value.items()}
    return {key: item for key, item in resolved.items() if item is not NO_VALUE}


def _fn_ref(argument: str, context: ResolutionContext) -> Any:
    return context.ref(argument)


def _fn_get_att(argument: Any, context: ResolutionContext) -> Any:
    argument = resolve(argument, context)
    logical_id, attribute = argument.split(".", 1) if isinstance(argument, str) else argument
    return context.get_att(logical_id, attribute)


def _fn_sub(argument: Any, context: ResolutionContext) -> str:
    if isinstance(argument, list):
        text, variables = argument[0], resolve(argument[1], context)
    else:
        text, variables = argument, {}

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("!"):
            return "${" + name[1:] + "}"
        if name in variables:
            return str(variables[name])
        if "." in name and not name.startswith("AWS::"):
            logical_id, attribute = name.split(".", 1)
            return str(context.get_att(logical_id, attribute))
        return str(context.ref(name))

    return _SUB_VARIABLE.sub(substitute, text)


def _fn_join(argument: Any, context: ResolutionContext) -> str:
    delimiter, items = argument
    return str(delimiter).join(str(item) for item in resolve(items, context))


def _fn_select(argument: Any, context: ResolutionContext) -> Any:
    index, items = resolve(argument, context)
    return items[int(index)]


def _fn_split(argument: Any, context: ResolutionContext) -> list[str]:
    delimiter, text = resolve(argument, context)
    return str(text).split(delimiter)


def _fn_if(argument: Any, context: ResolutionContext) -> Any:
    condition_name, when_true, when_false = argument
    return resolve(when_true if context.condition(condition_name) else when_false, context)


def _fn_equals(argument: Any, context: ResolutionContext) -> bool:
    left, right = resolve(argument, context)
    return str(left) == str(right)


def _fn_not(argument: Any, context: ResolutionContext) -> bool:
    (operand,) = argument
    return not _truth(operand, context)


def _fn_and(argument: Any, context: ResolutionContext) -> bool:
    return all(_truth(operand, context) for operand in argument)


def _fn_or(argument: Any, context: ResolutionContext) -> bool:
    return any(_truth(operand, context) for operand in argument)


def _truth(operand: Any, context: ResolutionContext) -> bool:
    """A condition operand: a nested function or {"Condition": name}."""
    return bool(resolve(operand, context))


def _fn_condition(argument: str, context: ResolutionContext) -> bool:
    return context.condition(argument)


def _fn_find_in_map(argument: Any, context: ResolutionContext) -> Any:
    map_name, top_key, second_key = resolve(argument, context)
    try:
        return context.mappings[map_name][top_key][second_key]
    except KeyError:
        raise UnresolvedReference(f"FindInMap {map_name}/{top_key}/{second_key}") from None


def _fn_import_value(argument: Any, context: ResolutionContext) -> Any:
    raise UnresolvedReference(
        f"ImportValue {resolve(argument, context)}: other stacks' exports do not exist locally"
    )


def _fn_base64(argument: Any, context: ResolutionContext) -> str:
    return base64.b64encode(str(resolve(argument, context)).encode()).decode()


def _fn_get_azs(argument: Any, context: ResolutionContext) -> list[str]:
    region = resolve(argument, context) or context.region
    return [f"{region}{suffix}" for suffix in "abc"]


def _fn_to_json_string(argument: Any, context: ResolutionContext) -> str:
    return json.dumps(resolve(argument, context), separators=(",", ":"))


def _fn_length(argument: Any, context: ResolutionContext) -> int:
    return len(resolve(argument, context))


_INTRINSICS = {
    "Ref": _fn_ref,
    "Condition": _fn_condition,
    "Fn::GetAtt": _fn_get_att,
    "Fn::Sub": _fn_sub,
    "Fn::Join": _fn_join,
    "Fn::Select": _fn_select,
    "Fn::Split": _fn_split,
    "Fn::If": _fn_if,
    "Fn::Equals": _fn_equals,
    "Fn::Not": _fn_not,
    "Fn::And": _fn_and,
    "Fn::Or": _fn_or,
    "Fn::FindInMap": _fn_find_in_map,
    "Fn::ImportValue": _fn_import_value,
    "Fn::Base64": _fn_base64,
    "Fn::GetAZs": _fn_get_azs,
    "Fn::ToJsonString": _fn_to_json_string,
    "Fn::Length": _fn_length,
}


def referenced_logical_ids(value: Any) -> set[str]:
    """Every logical id or parameter name `value` refers to (Ref, GetAtt, Sub variables)."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= referenced_logical_ids(item)
    elif isinstance(value, dict):
        for key, argument in value.items():
            if key == "Ref" and isinstance(argument, str):
                found.add(argument)
            elif key == "Fn::GetAtt":
                target = argument.split(".", 1)[0] if isinstance(argument, str) else argument[0]
                if isinstance(target, str):
                    found.add(target)
            elif key == "Fn::Sub":
                text = argument[0] if isinstance(argument, list) else argument
                local_names = set(argument[1]) if isinstance(argument, list) else set()
                for name in _SUB_VARIABLE.findall(text):
                    if not name.startswith("!") and name not in local_names:
                        found.add(name.split(".", 1)[0])
                if isinstance(argument, list):
                    found |= referenced_logical_ids(argument[1])
            else:
                found |= referenced_logical_ids(argument)
    return {name for name in found if not name.startswith("AWS::")}


def _is_plain_map(value: Any) -> bool:
    """A mapping that is not an intrinsic function call (those replace, never merge)."""
    if not isinstance(value, dict):
        return False
    return not (len(value) == 1 and next(iter(value)) in _INTRINSICS)


def merge_globals(global_properties: Mapping[str, Any], own: Mapping[str, Any]) -> dict[str, Any]:
    """SAM's Globals rule: maps merge (the resource wins), lists concatenate, scalars override."""
    merged: dict[str, Any] = dict(global_properties)
    for key, value in own.items():
        inherited = merged.get(key)
        if _is_plain_map(inherited) and _is_plain_map(value):
            merged[key] = merge_globals(inherited, value)
        elif isinstance(inherited, list) and isinstance(value, list):
            merged[key] = inherited + value
        else:
            merged[key] = value
    return merged


@dataclass(frozen=True)
class SqsEventSource:
    """A function's `Type: SQS` event, with SAM's defaults filled in."""

    name: str
    queue_logical_id: str | None
    queue: Any
    batch_size: int = 10
    maximum_batching_window_seconds: int = 0
    function_response_types: tuple[str, ...] = ()
    maximum_concurrency: int | None = None
    enabled: bool = True


@dataclass(frozen=True)
class DynamoDbStreamEventSource:
    """A function's `Type: DynamoDB` event (a table stream)."""

    name: str
    table_logical_id: str | None
    stream: Any
    starting_position: str = "LATEST"
    batch_size: int = 100
    maximum_batching_window_seconds: int = 0
    function_response_types: tuple[str, ...] = ()
    enabled: bool = True


@dataclass(frozen=True)
class OtherEventSource:
    """Any other event type (Schedule, Api, ...), kept as the template wrote it."""

    name: str
    type: str
    properties: dict[str, Any]


EventSource = SqsEventSource | DynamoDbStreamEventSource | OtherEventSource


def _target_logical_id(reference: Any) -> str | None:
    """`!GetAtt Queue.Arn` / `!Ref Queue` -> "Queue"; a literal ARN -> None."""
    if isinstance(reference, dict) and len(reference) == 1:
        ((key, argument),) = reference.items()
        if key == "Fn::GetAtt":
            return argument[0]
        if key == "Ref":
            return argument
    return None


def _event_source(name: str, event: Mapping[str, Any]) -> EventSource:
    event_type = event.get("Type", "")
    properties = dict(event.get("Properties") or {})
    if event_type == "SQS":
        scaling = properties.get("ScalingConfig") or {}
        return SqsEventSource(
            name=name,
            queue_logical_id=_target_logical_id(properties["Queue"]),
            queue=properties["Queue"],
            batch_size=int(properties.get("BatchSize", 10)),
            maximum_batching_window_seconds=int(
                properties.get("MaximumBatchingWindowInSeconds", 0)
            ),
            function_response_types=tuple(properties.get("FunctionResponseTypes") or ()),
            maximum_concurrency=(
                int(scaling["MaximumConcurrency"]) if "MaximumConcurrency" in scaling else None
            ),
            enabled=bool(properties.get("Enabled", True)),
        )
    if event_type == "DynamoDB":
        return DynamoDbStreamEventSource(
            name=name,
            table_logical_id=_target_logical_id(properties["Stream"]),
            stream=properties["Stream"],
            starting_position=properties.get("StartingPosition", "LATEST"),
            batch_size=int(properties.get("BatchSize", 100)),
            maximum_batching_window_seconds=int(
                properties.get("MaximumBatchingWindowInSeconds", 0)
            ),
            function_response_types=tuple(properties.get("FunctionResponseTypes") or ()),
            enabled=bool(properties.get("Enabled", True)),
        )
    return OtherEventSource(name=name, type=event_type, properties=properties)


@dataclass(frozen=True)
class Function:
    """An AWS::Serverless::Function with Globals.Function merged in (unresolved values)."""

    logical_id: str
    properties: dict[str, Any]
    base_dir: Path

    @property
    def code_uri(self) -> str:
        code_uri = self.properties.get("CodeUri", ".")
        if not isinstance(code_uri, str):
            raise ValueError(f"{self.logical_id}: only a local CodeUri path can run locally")
        return code_uri

    @property
    def handler(self) -> str:
        return self.properties["Handler"]

    @property
    def handler_file(self) -> Path:
        """`CodeUri: functions/score_lead/` + `Handler: app.handler` -> .../app.py."""
        module_path = self.handler.rsplit(".", 1)[0].replace(".", "/")
        return (self.base_dir / self.code_uri / f"{module_path}.py").resolve()

    @property
    def handler_name(self) -> str:
        return self.handler.rsplit(".", 1)[1]

    @property
    def timeout_seconds(self) -> int:
        return int(self.properties.get("Timeout", DEFAULT_TIMEOUT_SECONDS))

    @property
    def memory_mb(self) -> int:
        return int(self.properties.get("MemorySize", DEFAULT_MEMORY_MB))

    @property
    def environment(self) -> dict[str, Any]:
        """The merged `Environment.Variables`, intrinsics not yet resolved."""
        return dict((self.properties.get("Environment") or {}).get("Variables") or {})

    @property
    def events(self) -> tuple[EventSource, ...]:
        events = self.properties.get("Events") or {}
        return tuple(_event_source(name, event) for name, event in events.items())


@dataclass(frozen=True)
class Template:
    """A loaded template plus the folder its relative paths (CodeUri, DefinitionUri) use."""

    document: dict[str, Any]
    base_dir: Path

    @classmethod
    def load(cls, path: str | Path) -> Template:
        path = Path(path).resolve()
        return cls(document=load_template(path), base_dir=path.parent)

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return self.document["Resources"]

    @property
    def function_globals(self) -> dict[str, Any]:
        return dict((self.document.get("Globals") or {}).get("Function") or {})

    def parameter_values(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults from Parameters, replaced by `overrides`; list types split on commas."""
        overrides = dict(overrides or {})
        declared = self.document.get("Parameters") or {}
        unknown = set(overrides) - set(declared)
        if unknown:
            raise ValueError(f"unknown template parameters: {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for name, declaration in declared.items():
            if name in overrides:
                value = overrides[name]
            elif "Default" in declaration:
                value = declaration["Default"]
            else:
                raise ValueError(f"template parameter {name} has no Default and no value given")
            if declaration.get("Type", "String").startswith(("CommaDelimitedList", "List<")):
                value = value if isinstance(value, list) else str(value).split(",")
            elif not isinstance(value, list):
                value = str(value)
            allowed = declaration.get("AllowedValues")
            if allowed and value not in [str(option) for option in allowed]:
                raise ValueError(f"parameter {name}={value!r} is not one of {allowed}")
            values[name] = value
        return values

    def context(
        self,
        *,
        region: str,
        account_id: str,
        stack_name: str,
        parameters: Mapping[str, Any] | None = None,
    ) -> ResolutionContext:
        return ResolutionContext(
            region=region,
            account_id=account_id,
            stack_name=stack_name,
            parameters=self.parameter_values(parameters),
            condition_definitions=dict(self.document.get("Conditions") or {}),
            mappings=dict(self.document.get("Mappings") or {}),
        )

    def function(self, logical_id: str) -> Function:
        resource = self.resources[logical_id]
        if resource.get("Type") != "AWS::Serverless::Function":
            raise ValueError(f"{logical_id} is not an AWS::Serverless::Function")
        return Function(
            logical_id=logical_id,
            properties=merge_globals(self.function_globals, resource.get("Properties") or {}),
            base_dir=self.base_dir,
        )

    def functions(self) -> dict[str, Function]:
        return {
            logical_id: self.function(logical_id)
            for logical_id, resource in self.resources.items()
            if resource.get("Type") == "AWS::Serverless::Function"
        }
