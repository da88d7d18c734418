"""Offline checks of the Azure deployment (infra/, azure.yaml) on a real Bicep parse tree.

Every .bicep file is parsed with tree-sitter-bicep; the checks below walk that tree. They cover what can
be known without the Bicep compiler: syntax, symbol resolution (params, vars, resources, modules, loop
variables, imports), module paths, params and outputs, pinned API versions, built-in role ids, the
security settings (no shared keys, no local auth, no keys in settings or outputs) and the app settings
against router.settings.Settings. What needs the compiler (resource schemas, property and function
types, the linter rules in infra/bicepconfig.json) runs in .github/workflows/bicep.yml with
`az bicep build`; see "Deploy to Azure" in README.md.

`check_infra(path)` returns every problem found in an infra folder; `test_broken_template_is_caught`
breaks a copy of infra/ in one way at a time and asserts the matching check reports it.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import tree_sitter_bicep
import yaml
from tree_sitter import Language, Node, Parser

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "infra"

# Built-in role definition ids, verified against Microsoft's "Azure built-in roles" reference
# (learn.microsoft.com/azure/role-based-access-control/built-in-roles; MicrosoftDocs/azure-docs
# articles/role-based-access-control/built-in-roles.md, Storage, AI + machine learning and Monitor tables).
BUILT_IN_ROLES = {
    "storageBlobDataOwner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "storageQueueDataContributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "storageTableDataReader": "76199698-9eea-4c19-bc75-cec21354c6b6",
    "storageTableDataContributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "cognitiveServicesOpenAIUser": "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd",
    "monitoringMetricsPublisher": "3913510d-42f4-4e42-8a64-420c390055eb",
}
# Each principal's roles and the one resource type each is scoped to (least privilege: never the
# resource group). The app's table roles are per table (a role assignment may be scoped to one table:
# learn.microsoft.com/azure/storage/tables/assign-azure-role-data-access): Reader on models, Contributor
# on the others, nothing table-wide on the account, which would include write on models.
ACCOUNT = "Microsoft.Storage/storageAccounts"
TABLE = "Microsoft.Storage/storageAccounts/tableServices/tables"
EXPECTED_GRANTS = {
    "appPrincipalId": {
        "storageBlobDataOwner": ACCOUNT,
        "storageQueueDataContributor": ACCOUNT,
        "storageTableDataReader": TABLE,
        "storageTableDataContributor": TABLE,
        "cognitiveServicesOpenAIUser": "Microsoft.CognitiveServices/accounts",
        "monitoringMetricsPublisher": "Microsoft.Insights/components",
    },
    "userPrincipalId": {
        "storageBlobDataOwner": ACCOUNT,
        "storageQueueDataContributor": ACCOUNT,
        "storageTableDataContributor": ACCOUNT,  # writes the catalogue (postprovision hook)
        "cognitiveServicesOpenAIUser": "Microsoft.CognitiveServices/accounts",
        "monitoringMetricsPublisher": "Microsoft.Insights/components",
    },
}

# Pinned GA API versions. A new resource type, or a version bump, is a deliberate edit here.
PINNED_API_VERSIONS = {
    "Microsoft.Resources/resourceGroups": "2024-03-01",
    "Microsoft.ManagedIdentity/userAssignedIdentities": "2023-01-31",
    "Microsoft.OperationalInsights/workspaces": "2023-09-01",
    "Microsoft.Insights/components": "2020-02-02",
    "Microsoft.Storage/storageAccounts": "2025-01-01",
    "Microsoft.Storage/storageAccounts/blobServices": "2025-01-01",
    "Microsoft.Storage/storageAccounts/blobServices/containers": "2025-01-01",
    "Microsoft.Storage/storageAccounts/tableServices": "2025-01-01",
    "Microsoft.Storage/storageAccounts/tableServices/tables": "2025-01-01",
    "Microsoft.CognitiveServices/accounts": "2025-06-01",
    "Microsoft.CognitiveServices/accounts/deployments": "2025-06-01",
    "Microsoft.Web/serverfarms": "2024-11-01",
    "Microsoft.Web/sites": "2024-11-01",
    "Microsoft.Web/sites/basicPublishingCredentialsPolicies": "2024-11-01",
    "Microsoft.Authorization/roleAssignments": "2022-04-01",
}


def _words(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Bicep functions and decorators the templates may call (a misspelt one is reported).
BICEP_FUNCTIONS = _words(
    """any array base64 base64ToJson base64ToString bool buildUri concat contains coalesce dataUri
    dataUriToString dateTimeAdd dateTimeFromEpoch dateTimeToEpoch deployer deployment empty endsWith
    environment extensionResourceId filter first flatten format getSecret groupBy guid indexOf int
    intersection items join json last lastIndexOf length lambdaVariables loadFileAsBase64
    loadJsonContent loadTextContent loadYamlContent managementGroup managementGroupResourceId map
    mapValue max min newGuid objectKeys padLeft parseCidr pickZones range readEnvironmentVariable reduce
    reference replace resourceGroup resourceId shallowMerge skip sort split startsWith string
    subscription subscriptionResourceId substring take tenant tenantResourceId toLower toObject toUpper
    trim union uniqueString uri uriComponent uriComponentToString utcNow"""
)
BICEP_DECORATORS = _words(
    """allowed batchSize description discriminator export metadata minLength maxLength minValue
    maxValue onlyIfNotExists sealed secure sys.description"""
)
# App settings the Flex Consumption plan deprecates (runtime, scale and deployment moved to
# functionAppConfig), from "Flex Consumption plan deprecations" in
# learn.microsoft.com/azure/azure-functions/functions-app-settings
FLEX_DEPRECATED_SETTINGS = _words(
    """FUNCTIONS_EXTENSION_VERSION FUNCTIONS_WORKER_RUNTIME FUNCTIONS_WORKER_RUNTIME_VERSION
    WEBSITE_RUN_FROM_PACKAGE WEBSITE_CONTENTSHARE WEBSITE_CONTENTAZUREFILECONNECTIONSTRING
    WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT SCM_DO_BUILD_DURING_DEPLOYMENT ENABLE_ORYX_BUILD
    WEBSITE_NODE_DEFAULT_VERSION WEBSITE_TIME_ZONE TZ AzureWebJobsStorage"""
)
HOST_SETTING = re.compile(
    r"^(AzureWebJobs|FUNCTIONS_|APPLICATIONINSIGHTS_|WEBSITE_|SCM_|AZURE_FUNCTIONS_|PYTHON_)"
)
# Settings the deployment sets before the app declares them: accepted while router.settings.Settings
# lacks the field; once it has it, the field's default must equal the value given here.
PENDING_SETTINGS = {"HEALTH_TABLE": "health"}
# Settings the deployed app must get even though Settings gives them a default or None.
DEPLOYED_SETTINGS = _words(
    """AZURE_CLIENT_ID TABLES_ENDPOINT AZURE_OPENAI_ENDPOINT AZURE_OPENAI_API_VERSION MODELS_TABLE COSTS_TABLE
    HEALTH_TABLE COSTS_ROLLUP_TABLE QUALITY_TABLE BUDGETS_TABLE CLASSIFIER_MODEL ALLOWED_ENDPOINT_SUFFIXES"""
)
GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
RESOURCE_TYPE = re.compile(
    r"^(?P<type>[A-Za-z]+\.[A-Za-z]+(?:/[A-Za-z]+)+)@(?P<version>\d{4}-\d{2}-\d{2}(?:-[a-z]+)?)$"
)


# ---------------------------------------------------------------------------------------------------
# Parse tree walker
# ---------------------------------------------------------------------------------------------------

_PARSER = Parser(Language(tree_sitter_bicep.language()))


def text(node: Node | None) -> str:
    return "" if node is None or node.text is None else node.text.decode("utf-8")


def where(path: Path, node: Node) -> str:
    line, column = node.start_point
    return f"{path.name}:{line + 1}:{column + 1}"


def named(node: Node) -> list[Node]:
    return [child for child in node.children if child.is_named and child.type != "comment"]


@dataclass
class Decl:
    kind: str  # param | var | resource | module | output | type | func | import
    name: str
    node: Node
    decorators: list[Node] = field(default_factory=list)

    def decorator(self, name: str) -> Node | None:
        """The call_expression of decorator @name(...), if present."""
        for deco in self.decorators:
            call = named(deco)[0]
            if call.type == "call_expression" and text(named(call)[0]) == name:
                return call
        return None

    @property
    def type_string(self) -> str:
        """Resource type@version, or module path."""
        for child in named(self.node):
            if child.type == "string":
                return string_value(child) or ""
        return ""

    @property
    def body(self) -> Node | None:
        """The resource or module object, looking through `if (...)` and `[for ...: ...]`."""
        value = named(self.node)[-1]
        while value.type in ("for_statement", "if_statement"):
            value = named(value)[-1]
        return value if value.type == "object" else None

    @property
    def value(self) -> Node | None:
        """Default value of a param, value of a var or output."""
        children = self.node.children
        for index, child in enumerate(children):
            if child.type == "=":
                return next((c for c in children[index + 1 :] if c.is_named), None)
        return None


_DECL_KINDS = {
    "parameter_declaration": "param",
    "variable_declaration": "var",
    "resource_declaration": "resource",
    "module_declaration": "module",
    "output_declaration": "output",
    "type_declaration": "type",
    "user_defined_function": "func",
}


@dataclass
class BicepFile:
    path: Path
    root: Node
    decls: list[Decl]

    def by_kind(self, kind: str) -> dict[str, Decl]:
        return {d.name: d for d in self.decls if d.kind == kind}

    def names(self) -> set[str]:
        return {d.name for d in self.decls if d.kind not in ("type", "output")}

    def resources(self, type_prefix: str, *, existing: bool | None = False) -> list[Decl]:
        found = []
        for decl in self.decls:
            if decl.kind != "resource" or decl.type_string.split("@")[0] != type_prefix:
                continue
            is_existing = any(c.type == "existing" for c in decl.node.children)
            if existing is None or existing == is_existing:
                found.append(decl)
        return found

    @property
    def target_scope(self) -> str:
        for child in named(self.root):
            if child.type == "target_scope_assignment":
                return string_value(named(child)[-1]) or ""
        return "resourceGroup"


def parse_file(path: Path) -> BicepFile:
    tree = _PARSER.parse(path.read_bytes())
    decls: list[Decl] = []
    pending: list[Node] = []
    for child in named(tree.root_node):
        if child.type == "decorators":
            pending = named(child)
            continue
        if child.type in _DECL_KINDS:
            decl = Decl(_DECL_KINDS[child.type], text(named(child)[0]), child, pending)
            decls.append(decl)
            if decl.kind == "resource":
                decls.extend(_nested_resources(child))
        elif child.type == "import_functionality":
            decls.extend(Decl("import", text(n), child) for n in named(child) if n.type == "identifier")
        pending = []
    return BicepFile(path, tree.root_node, decls)


def _nested_resources(node: Node) -> Iterator[Decl]:
    for child in walk(node):
        if child is not node and child.type == "resource_declaration":
            yield Decl("resource", text(named(child)[0]), child)


def walk(node: Node) -> Iterator[Node]:
    yield node
    for child in node.children:
        yield from walk(child)


def string_value(node: Node) -> str | None:
    """A string literal's value, or None if it is interpolated (or not a string)."""
    if node.type != "string" or any(c.type == "interpolation" for c in node.children):
        return None
    out = []
    for child in node.children:
        if child.type == "string_content":
            out.append(text(child))
        elif child.type == "escape_sequence":
            out.append(
                {"\\'": "'", "\\\\": "\\", "\\n": "\n", "\\r": "\r", "\\t": "\t", "\\$": "$"}[text(child)]
            )
    return "".join(out)


class NotLiteral(ValueError):
    pass


def literal(node: Node | None) -> Any:
    """The Python value of a literal expression (object, array, string, number, bool, null)."""
    if node is None:
        raise NotLiteral("missing")
    if node.type == "string":
        value = string_value(node)
        if value is None:
            raise NotLiteral(text(node))
        return value
    if node.type == "number":
        return int(text(node))
    if node.type == "boolean":
        return text(node) == "true"
    if node.type == "null":
        return None
    if node.type == "array":
        return [literal(item) for item in named(node)]
    if node.type == "object":
        return {key: literal(value) for key, value in properties(node).items()}
    if node.type == "unary_expression" and text(node.children[0]) == "-" and named(node)[0].type == "number":
        return -int(text(named(node)[0]))
    raise NotLiteral(text(node))


def properties(obj: Node) -> dict[str, Node]:
    """Key -> value node of an object literal (keys with interpolation are skipped)."""
    out: dict[str, Node] = {}
    for item in named(obj):
        if item.type != "object_property":
            continue
        parts = named(item)
        if len(parts) < 2:
            continue
        key_node, value = parts[0], parts[-1]
        key = text(key_node) if key_node.type == "identifier" else string_value(key_node)
        if key is not None:
            out[key] = value
    return out


def prop(obj: Node | None, dotted: str) -> Node | None:
    """Value node at a dotted path of nested object literals, or None."""
    node = obj
    for key in dotted.split("."):
        if node is None or node.type != "object":
            return None
        node = properties(node).get(key)
    return node


def prop_literal(obj: Node | None, dotted: str) -> Any:
    value = prop(obj, dotted)
    if value is None:
        return "<missing>"
    try:
        return literal(value)
    except NotLiteral:
        return "<expression>"


# --- symbol references -------------------------------------------------------------------------------


@dataclass
class Refs:
    symbols: list[tuple[str, Node]] = field(default_factory=list)  # (name, node) in expression position
    types: list[tuple[str, Node]] = field(default_factory=list)
    functions: list[tuple[str, Node]] = field(default_factory=list)
    decorators: list[tuple[str, Node]] = field(default_factory=list)
    methods: list[tuple[str, Node]] = field(default_factory=list)  # resource.fn(...), e.g. listKeys


def collect_refs(bicep: BicepFile) -> Refs:
    refs = Refs()
    for child in named(bicep.root):
        _refs(child, frozenset(), refs)
    return refs


def _position(node: Node, token: str) -> int:
    return next(i for i, child in enumerate(node.children) if child.type == token)


def _refs(node: Node, local: frozenset[str], refs: Refs) -> None:
    kind = node.type
    if kind == "identifier":
        name = text(node)
        if name not in local:
            refs.symbols.append((name, node))
        return
    if kind in (
        "comment",
        "string_content",
        "escape_sequence",
        "property_identifier",
        "import_functionality",
    ):
        return
    if kind == "decorators":
        for deco in named(node):
            _refs(deco, local, refs)
        return
    if kind == "decorator":
        call = named(node)[0]
        callee = named(call)[0]
        refs.decorators.append((text(callee), callee))
        for arg in named(call)[1:]:
            _refs(arg, local, refs)
        return
    if kind == "call_expression":
        callee, *rest = named(node)
        if callee.type == "identifier":
            refs.functions.append((text(callee), callee))
        elif callee.type == "member_expression":
            owner, method = named(callee)[0], text(named(callee)[-1])
            if text(owner) in ("sys", "az"):  # namespaced built-in
                refs.functions.append((method, callee))
            else:  # a resource function such as storage.listKeys()
                refs.methods.append((method, callee))
                _refs(owner, local, refs)
        for arg in rest:
            _refs(arg, local, refs)
        return
    if kind == "member_expression":
        _refs(named(node)[0], local, refs)
        return
    if kind == "object_property":
        parts = named(node)
        if parts and parts[0].type == "resource_declaration":  # nested child resource
            _refs(parts[0], local, refs)
            return
        if parts and parts[0].type == "decorators":
            _refs(parts[0], local, refs)
            parts = parts[1:]
        if parts and parts[0].type == "string":  # interpolated key
            _refs(parts[0], local, refs)
        for value in parts[1:]:
            _refs(value, local, refs)
        return
    if kind == "for_statement":
        index_in, index_colon = _position(node, "in"), _position(node, ":")
        loop_vars = set()
        for child in node.children[:index_in]:
            if child.type == "identifier":
                loop_vars.add(text(child))
            elif child.type == "for_loop_parameters":
                loop_vars |= {text(c) for c in named(child)}
        for child in node.children[index_in + 1 : index_colon]:
            if child.is_named:
                _refs(child, local, refs)
        for child in node.children[index_colon + 1 :]:
            if child.is_named:
                _refs(child, local | loop_vars, refs)
        return
    if kind == "lambda_expression":
        arrow = _position(node, "=>")
        params = {text(c) for child in node.children[:arrow] for c in walk(child) if c.type == "identifier"}
        for child in node.children[arrow + 1 :]:
            if child.is_named:
                _refs(child, local | params, refs)
        return
    if kind in ("parameter_declaration", "output_declaration"):
        for child in named(node)[1:]:
            if child.type == "type":
                _type_refs(child, local, refs)
            else:
                _refs(child, local, refs)
        return
    if kind == "type_declaration":
        _type_refs(named(node)[-1], local, refs)
        return
    if kind == "user_defined_function":
        params = {text(named(p)[0]) for p in walk(node) if p.type == "parameter"}
        for child in named(node)[1:]:
            if child.type == "parameters":
                continue
            if child.type == "type":
                _type_refs(child, local, refs)
            else:
                _refs(child, local | params, refs)
        return
    if kind in ("variable_declaration", "resource_declaration", "module_declaration"):
        for child in named(node)[1:]:
            if child.type != "string":  # the type@version or module path
                _refs(child, local, refs)
        return
    for child in named(node):
        _refs(child, local, refs)


def _type_refs(node: Node, local: frozenset[str], refs: Refs) -> None:
    if node.type == "identifier":
        refs.types.append((text(node), node))
        return
    if node.type == "decorators":
        _refs(node, local, refs)
        return
    if node.type == "object_property":
        parts = named(node)
        for part in parts[1:]:
            _type_refs(part, local, refs)
        return
    for child in named(node):
        _type_refs(child, local, refs)


# ---------------------------------------------------------------------------------------------------
# Checks: each returns a list of problems (empty = fine)
# ---------------------------------------------------------------------------------------------------


@dataclass
class Infra:
    folder: Path
    files: dict[Path, BicepFile]

    @property
    def main(self) -> BicepFile:
        return self.files[self.folder / "main.bicep"]

    def module_target(self, bicep: BicepFile, module: Decl) -> BicepFile | None:
        return self.files.get((bicep.path.parent / module.type_string).resolve())

    def module_decl(self, path_suffix: str) -> Decl:
        for module in self.main.by_kind("module").values():
            if module.type_string.endswith(path_suffix):
                return module
        raise LookupError(f"main.bicep has no module {path_suffix}")

    def file(self, name: str) -> BicepFile:
        return self.files[(self.folder / name).resolve()]

    def all_resources(
        self, type_prefix: str, *, existing: bool | None = False
    ) -> list[tuple[BicepFile, Decl]]:
        return [(b, d) for b in self.files.values() for d in b.resources(type_prefix, existing=existing)]


def load_infra(folder: Path) -> tuple[Infra, list[str]]:
    problems = []
    files = {}
    for path in sorted(folder.rglob("*.bicep")):
        bicep = parse_file(path)
        files[path.resolve()] = bicep
        for node in walk(bicep.root):
            if node.type == "ERROR" or node.is_missing:
                what = f"missing {node.type!r}" if node.is_missing else f"unexpected {text(node)[:40]!r}"
                problems.append(f"{where(path, node)}: syntax error: {what}")
    return Infra(folder.resolve(), files), problems


def check_symbols(infra: Infra) -> list[str]:
    problems = []
    for bicep in infra.files.values():
        refs = collect_refs(bicep)
        declared = bicep.names()
        for name, node in refs.symbols:
            if name not in declared:
                problems.append(f"{where(bicep.path, node)}: undeclared symbol {name!r}")
        types = {d.name for d in bicep.decls if d.kind in ("type", "import")}
        for name, node in refs.types:
            if name not in types:
                problems.append(f"{where(bicep.path, node)}: undeclared type {name!r}")
        funcs = BICEP_FUNCTIONS | set(bicep.by_kind("func"))
        for name, node in refs.functions:
            if name not in funcs:
                problems.append(f"{where(bicep.path, node)}: unknown function {name!r}")
        for name, node in refs.decorators:
            if name not in BICEP_DECORATORS:
                problems.append(f"{where(bicep.path, node)}: unknown decorator @{name}")
        used = {name for name, _ in refs.symbols}
        for decl in bicep.decls:
            if decl.kind in ("param", "var") and decl.name not in used:
                problems.append(f"{where(bicep.path, decl.node)}: unused {decl.kind} {decl.name!r}")
        names = [d.name for d in bicep.decls if d.kind != "output"]
        for name in sorted({n for n in names if names.count(n) > 1}):
            problems.append(f"{bicep.path.name}: {name!r} is declared more than once")
    return problems


def check_imports(infra: Infra) -> list[str]:
    problems = []
    for bicep in infra.files.values():
        for child in named(bicep.root):
            if child.type != "import_functionality":
                continue
            source = next(n for n in named(child) if n.type == "string")
            target = infra.files.get((bicep.path.parent / (string_value(source) or "")).resolve())
            if target is None:
                problems.append(f"{where(bicep.path, source)}: import from missing file {text(source)}")
                continue
            exported = {
                d.name for d in target.decls if d.kind in ("type", "var", "func") and d.decorator("export")
            }
            for name in (text(n) for n in named(child) if n.type == "identifier"):
                if name not in exported and "*" not in text(child):
                    problems.append(
                        f"{where(bicep.path, child)}: {target.path.name} does not @export() {name!r}"
                    )
    return problems


def _param_required(decl: Decl) -> bool:
    has_default = any(c.type == "=" for c in decl.node.children)
    nullable = any(n.type == "nullable_type" for n in walk(decl.node))
    return not has_default and not nullable


def check_modules(infra: Infra) -> list[str]:
    problems = []
    for bicep in infra.files.values():
        modules = bicep.by_kind("module")
        for module in modules.values():
            path = module.type_string
            if path.startswith(("br:", "br/", "ts:", "ts/")):
                problems.append(
                    f"{where(bicep.path, module.node)}: registry module {path!r} cannot be checked offline"
                )
                continue
            target = infra.module_target(bicep, module)
            if target is None:
                problems.append(f"{where(bicep.path, module.node)}: module path {path!r} does not exist")
                continue
            params = target.by_kind("param")
            given_node = prop(module.body, "params")
            given = properties(given_node) if given_node is not None else {}
            for name, value in given.items():
                if name not in params:
                    problems.append(
                        f"{where(bicep.path, value)}: module {module.name!r}: {path} has no param {name!r}"
                    )
            for name, decl in params.items():
                if _param_required(decl) and name not in given:
                    problems.append(
                        f"{where(bicep.path, module.node)}: module {module.name!r}: "
                        f"required param {name!r} not set"
                    )
            if bicep.target_scope != "resourceGroup" and prop(module.body, "scope") is None:
                problems.append(
                    f"{where(bicep.path, module.node)}: module {module.name!r} needs a scope "
                    f"at {bicep.target_scope} scope"
                )
        # m.outputs.x: x must be an output of m's file
        for node in walk(bicep.root):
            if node.type != "member_expression":
                continue
            inner = named(node)[0]
            if inner.type == "member_expression" and text(named(inner)[-1]) == "outputs":
                owner = text(named(inner)[0])
                if owner in modules:
                    target = infra.module_target(bicep, modules[owner])
                    output = text(named(node)[-1])
                    if target is not None and output not in target.by_kind("output"):
                        problems.append(
                            f"{where(bicep.path, node)}: module {owner!r} has no output {output!r}"
                        )
    return problems


def check_api_versions(infra: Infra) -> list[str]:
    problems = []
    for bicep in infra.files.values():
        for decl in bicep.by_kind("resource").values():
            type_string = decl.type_string
            if decl.node.parent is not None and decl.node.parent.type == "object_property":
                if "@" in type_string:
                    problems.append(
                        f"{where(bicep.path, decl.node)}: nested resource {decl.name!r} "
                        "should inherit its parent's API version"
                    )
                continue
            match = RESOURCE_TYPE.match(type_string)
            if match is None:
                problems.append(
                    f"{where(bicep.path, decl.node)}: {decl.name}: {type_string!r} is not type@yyyy-mm-dd"
                )
                continue
            rtype, version = match["type"], match["version"]
            if "preview" in version or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", version):
                problems.append(f"{where(bicep.path, decl.node)}: {type_string}: not a GA API version")
            pinned = PINNED_API_VERSIONS.get(rtype)
            if pinned is None:
                problems.append(f"{where(bicep.path, decl.node)}: {rtype} has no pinned API version")
            elif version != pinned:
                problems.append(
                    f"{where(bicep.path, decl.node)}: {rtype}@{version}: pinned version is {pinned}"
                )
    return problems


def _expect(problems: list[str], bicep: BicepFile, decl: Decl, dotted: str, expected: Any) -> None:
    actual = prop_literal(decl.body, dotted)
    if actual != expected:
        problems.append(f"{bicep.path.name}: {decl.name}: {dotted} must be {expected!r}, is {actual!r}")


def _expect_param(problems: list[str], bicep: BicepFile, decl: Decl, dotted: str) -> None:
    value = prop(decl.body, dotted)
    if value is None or value.type != "identifier" or text(value) not in bicep.by_kind("param"):
        problems.append(f"{bicep.path.name}: {decl.name}: {dotted} must be set from a parameter")


def check_security(infra: Infra) -> list[str]:
    problems: list[str] = []
    required: dict[str, list[tuple[str, Any]]] = {
        "Microsoft.Storage/storageAccounts": [
            ("properties.allowSharedKeyAccess", False),
            ("properties.allowBlobPublicAccess", False),
            ("properties.minimumTlsVersion", "TLS1_2"),
            ("properties.supportsHttpsTrafficOnly", True),
            ("properties.defaultToOAuthAuthentication", True),
        ],
        "Microsoft.CognitiveServices/accounts": [("kind", "OpenAI"), ("properties.disableLocalAuth", True)],
        "Microsoft.Insights/components": [("properties.DisableLocalAuth", True)],
        "Microsoft.OperationalInsights/workspaces": [("properties.features.disableLocalAuth", True)],
        "Microsoft.Web/serverfarms": [
            ("sku.name", "FC1"),
            ("sku.tier", "FlexConsumption"),
            ("properties.reserved", True),
        ],
        "Microsoft.Web/sites": [
            ("kind", "functionapp,linux"),
            ("identity.type", "UserAssigned"),
            ("properties.httpsOnly", True),
            ("properties.siteConfig.ftpsState", "Disabled"),
            ("properties.siteConfig.minTlsVersion", "1.2"),
            ("properties.functionAppConfig.deployment.storage.type", "blobContainer"),
            ("properties.functionAppConfig.deployment.storage.authentication.type", "UserAssignedIdentity"),
            ("properties.functionAppConfig.runtime.name", "python"),
        ],
        "Microsoft.Web/sites/basicPublishingCredentialsPolicies": [("properties.allow", False)],
    }
    for rtype, expectations in required.items():
        found = infra.all_resources(rtype)
        if not found:
            problems.append(f"no {rtype} resource")
        for bicep, decl in found:
            for dotted, expected in expectations:
                _expect(problems, bicep, decl, dotted, expected)
    for bicep, decl in infra.all_resources("Microsoft.CognitiveServices/accounts"):
        if prop(decl.body, "properties.customSubDomainName") is None:
            problems.append(
                f"{bicep.path.name}: {decl.name}: properties.customSubDomainName is required for Entra auth"
            )
    for bicep, decl in infra.all_resources("Microsoft.Insights/components"):
        if prop(decl.body, "properties.WorkspaceResourceId") is None:
            problems.append(f"{bicep.path.name}: {decl.name}: properties.WorkspaceResourceId must be set")
    for bicep, decl in infra.all_resources("Microsoft.CognitiveServices/accounts/deployments"):
        batch = decl.decorator("batchSize")
        if batch is None or [text(a) for a in named(named(batch)[1])] != ["1"]:
            problems.append(f"{bicep.path.name}: {decl.name}: model deployments need @batchSize(1)")
    for bicep, decl in infra.all_resources("Microsoft.Web/sites"):
        for dotted in (
            "properties.functionAppConfig.scaleAndConcurrency.maximumInstanceCount",
            "properties.functionAppConfig.scaleAndConcurrency.instanceMemoryMB",
            "properties.functionAppConfig.runtime.version",
        ):
            _expect_param(problems, bicep, decl, dotted)
        if (
            prop(
                decl.body,
                "properties.functionAppConfig.deployment.storage.authentication.userAssignedIdentityResourceId",
            )
            is None
        ):
            problems.append(
                f"{bicep.path.name}: {decl.name}: deployment storage needs userAssignedIdentityResourceId"
            )
    policies = {
        prop_literal(d.body, "name")
        for _, d in infra.all_resources("Microsoft.Web/sites/basicPublishingCredentialsPolicies")
    }
    if policies != {"ftp", "scm"}:
        problems.append(
            f"basic publishing credentials must be disabled for ftp and scm, found {sorted(policies)}"
        )
    # No keys anywhere: no list*() calls, no account keys or SAS in strings, nothing key-like in outputs.
    for bicep in infra.files.values():
        refs = collect_refs(bicep)
        for name, node in refs.functions + refs.methods:
            if name.startswith("list"):
                problems.append(f"{where(bicep.path, node)}: {name}() reads keys or secrets")
        for node in walk(bicep.root):
            if node.type == "string_content" and re.search(
                r"AccountKey=|SharedAccessSignature=|sig=", text(node)
            ):
                problems.append(f"{where(bicep.path, node)}: string holds a key or SAS")
        for decl in bicep.by_kind("output").values():
            if re.search(r"key|secret|password|connectionstring|sas", decl.name, re.IGNORECASE):
                problems.append(f"{where(bicep.path, decl.node)}: output {decl.name!r} looks like a secret")
            if decl.decorator("secure") is not None:
                problems.append(
                    f"{where(bicep.path, decl.node)}: output {decl.name!r} is @secure(): output no secrets"
                )
            if "ConnectionString" in text(decl.value):
                problems.append(
                    f"{where(bicep.path, decl.node)}: output {decl.name!r} exposes a connection string"
                )
    return problems


# --- role assignments ----------------------------------------------------------------------------------


def _role_keys(bicep: BicepFile, expr: Node, assignment: Decl, role_var: str) -> set[str] | None:
    """Role-table keys an expression names: roles.x, or a loop variable over an array of roles.x."""
    if expr.type == "member_expression" and text(named(expr)[0]) == role_var:
        return {text(named(expr)[-1])}
    if expr.type == "identifier":
        loop = named(assignment.node)[-1]
        if loop.type == "for_statement" and text(expr) in {
            text(c) for c in loop.children[: _position(loop, "in")]
        }:
            iterable = loop.children[_position(loop, "in") + 1]
            var = bicep.by_kind("var").get(text(iterable))
            if var is not None and var.value is not None and var.value.type == "array":
                keys = [_role_keys(bicep, item, assignment, role_var) for item in named(var.value)]
                if all(k is not None for k in keys):
                    return set().union(*(k for k in keys if k is not None))
    return None


def role_table(bicep: BicepFile) -> Decl | None:
    """The one var holding an object of role name -> role definition GUID."""
    tables = [
        decl
        for decl in bicep.by_kind("var").values()
        if decl.value is not None
        and decl.value.type == "object"
        and properties(decl.value)
        and all(GUID.match(str(prop_literal(decl.value, key))) for key in properties(decl.value))
    ]
    return tables[0] if len(tables) == 1 else None


def check_role_assignments(infra: Infra) -> list[str]:
    problems: list[str] = []
    granted: dict[str, dict[str, set[str]]] = {}  # principal expression -> role key -> scope resource types
    conditional: dict[str, bool] = {}
    verified = set(BUILT_IN_ROLES.values())
    for bicep in infra.files.values():
        # Every GUID literal anywhere must be a verified built-in role id.
        for node in walk(bicep.root):
            value = string_value(node) if node.type == "string" else None
            if value and GUID.match(value) and value not in verified:
                problems.append(f"{where(bicep.path, node)}: {value} is not a verified built-in role id")
        assignments = bicep.resources("Microsoft.Authorization/roleAssignments")
        if not assignments:
            continue
        table = role_table(bicep)
        if table is None:
            problems.append(f"{bicep.path.name}: keep the role ids in one var object of role name -> GUID")
            continue
        for key, value in literal(table.value).items():
            if BUILT_IN_ROLES.get(key) != value:
                expected = BUILT_IN_ROLES.get(key, "unknown")
                problems.append(f"{bicep.path.name}: role {key!r} = {value}: the built-in id is {expected}")
        for decl in assignments:
            problems.extend(_check_assignment(bicep, decl, table.name, granted, conditional))
    rbac = infra.module_decl("rbac.bicep")
    app_principal = text(prop(rbac.body, "params.appPrincipalId"))
    if app_principal != f"{infra.module_decl('identity.bicep').name}.outputs.principalId":
        problems.append(
            f"rbac module: appPrincipalId must be the app identity's principalId, is {app_principal!r}"
        )
    for principal, expected in EXPECTED_GRANTS.items():
        got = granted.get(principal, {})
        missing = set(expected) - set(got)
        if missing:
            problems.append(f"{principal} lacks roles: {', '.join(sorted(missing))}")
        for key, scopes in sorted(got.items()):
            if scopes != {expected.get(key)}:
                where_ = ", ".join(sorted(scopes))
                problems.append(
                    f"{principal}: {key} must be scoped to {expected.get(key)} only, not {where_}"
                )
    if granted.get("userPrincipalId") and not conditional.get("userPrincipalId"):
        problems.append("user role assignments must be conditional on a principalId being given")
    return [*problems, *_check_table_split(infra)]


def _check_table_split(infra: Infra) -> list[str]:
    """The rbac module reads models and writes the others: models is never among the written tables."""
    rbac = infra.module_decl("rbac.bicep")
    problems = []
    if text(prop(rbac.body, "params.modelsTableName")) != "modelsTableName":
        problems.append("rbac module: modelsTableName must be the modelsTableName param")
    written = prop(rbac.body, "params.dataTableNames")
    names = {text(n) for n in named(written)} if written is not None and written.type == "array" else set()
    if "modelsTableName" in names:
        problems.append("rbac module: the models table must not be in dataTableNames (the app only reads it)")
    for table in ("costsTableName", "healthTableName", "costsRollupTableName"):
        if table not in names:
            problems.append(f"rbac module: dataTableNames lacks {table}")
    return problems


def _check_assignment(
    bicep: BicepFile,
    decl: Decl,
    role_var: str,
    granted: dict[str, dict[str, str]],
    conditional: dict[str, bool],
) -> list[str]:
    """One roleAssignments resource: guid(scope.id, principal, role) name, role id form, role scope."""
    problems = []
    body = decl.body
    label = f"{bicep.path.name}: {decl.name}"
    name, scope = prop(body, "name"), prop(body, "scope")
    principal, role_def = prop(body, "properties.principalId"), prop(body, "properties.roleDefinitionId")
    if prop(body, "properties.principalType") is None:
        problems.append(f"{label}: set properties.principalType")
    if name is None or scope is None or principal is None or role_def is None:
        return [*problems, f"{label}: needs name, scope, principalId and roleDefinitionId"]
    def_args = named(named(role_def)[1]) if role_def.type == "call_expression" else []
    if (
        text(named(role_def)[0]) != "subscriptionResourceId"
        or len(def_args) != 2
        or string_value(def_args[0]) != "Microsoft.Authorization/roleDefinitions"
    ):
        return [
            *problems,
            f"{label}: roleDefinitionId must be "
            "subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)",
        ]
    role = def_args[1]
    is_guid = name.type == "call_expression" and text(named(name)[0]) == "guid"
    guid_args = [text(arg) for arg in named(named(name)[1])] if is_guid else []
    if guid_args != [f"{text(scope)}.id", text(principal), text(role)]:
        problems.append(f"{label}: name must be guid({text(scope)}.id, {text(principal)}, {text(role)})")
    keys = _role_keys(bicep, role, decl, role_var)
    if keys is None:
        return [*problems, f"{label}: cannot tell which role {text(role)} is"]
    # `tables[i]`: one element of a resource loop, whose type is the loop's.
    scope_decl = bicep.by_kind("resource").get(text(scope).split("[")[0])
    scope_type = scope_decl.type_string.split("@")[0] if scope_decl else "?"
    for key in sorted(keys):
        granted.setdefault(text(principal), {}).setdefault(key, set()).add(scope_type)
    is_conditional = any(n.type == "if_statement" for n in walk(named(decl.node)[-1]))
    conditional[text(principal)] = conditional.get(text(principal), True) and is_conditional
    return problems


# --- app settings against router.settings.Settings --------------------------------------------------------


@cache
def settings_model() -> Any:
    from router.settings import Settings, required_settings

    return Settings, tuple(required_settings())


def app_settings(infra: Infra) -> tuple[dict[str, Node], list[str]]:
    """Every app setting the function app gets: the module's appSettings plus its hostSettings."""
    problems: list[str] = []
    settings: dict[str, Node] = {}
    module = infra.module_decl("function-app.bicep")
    given = prop(module.body, "params.appSettings")
    objects = [given] if given is not None and given.type == "object" else []
    if given is not None and given.type == "call_expression" and text(named(given)[0]) == "union":
        objects = [arg for arg in named(named(given)[1]) if arg.type == "object"]
    if not objects:
        problems.append("main.bicep: the function-app module's appSettings must contain an object literal")
    for obj in objects:
        settings.update(properties(obj))
    target = infra.module_target(infra.main, module)
    if target is None:
        return settings, problems
    host = target.by_kind("var").get("hostSettings")
    if host is None or host.value is None or host.value.type != "object":
        problems.append("function-app.bicep: var hostSettings (an object) is missing")
    else:
        settings.update(properties(host.value))
    config = [d for d in target.by_kind("resource").values() if d.type_string == "config"]
    applied = {
        text(n) for c in config for n in walk(prop(c.body, "properties") or c.node) if n.type == "identifier"
    }
    if (
        not config
        or prop_literal(config[0].body, "name") != "appsettings"
        or not {"appSettings", "hostSettings"} <= applied
    ):
        problems.append(
            "function-app.bicep: a 'config' child named appsettings must apply "
            "union(appSettings, hostSettings)"
        )
    return settings, problems


def check_app_settings(infra: Infra) -> list[str]:
    settings_cls, required = settings_model()
    fields = settings_cls.model_fields
    settings, problems = app_settings(infra)
    for name in sorted((set(required) | DEPLOYED_SETTINGS) - set(settings)):
        problems.append(f"app setting {name} is not set on the function app")
    for name, value in settings.items():
        if name in FLEX_DEPRECATED_SETTINGS:
            problems.append(f"app setting {name} is deprecated on the Flex Consumption plan")
        elif re.search(r"CONNECTION_STRING$", name) and name != "APPLICATIONINSIGHTS_CONNECTION_STRING":
            problems.append(f"app setting {name}: no connection strings, use the managed identity")
        elif not HOST_SETTING.match(name) and name not in fields and name not in PENDING_SETTINGS:
            problems.append(f"app setting {name} is not a field of router.settings.Settings (typo?)")
        # A setting fed by a param must default to what the code defaults to.
        if value.type == "identifier" and text(value) in infra.main.by_kind("param"):
            param = infra.main.by_kind("param")[text(value)]
            try:
                bicep_default = literal(param.value)
            except NotLiteral:
                continue
            if name in fields:
                code_default = fields[name].default
            elif name in PENDING_SETTINGS:
                code_default = PENDING_SETTINGS[name]
            else:
                continue
            if code_default is not None and bicep_default != code_default:
                problems.append(
                    f"param {param.name} defaults to {bicep_default!r}, "
                    f"{name} defaults to {code_default!r} in the code"
                )
    for name, pending in PENDING_SETTINGS.items():
        if name in fields and fields[name].default != pending:
            problems.append(
                f"{name}: Settings now defaults to {fields[name].default!r}, update PENDING_SETTINGS"
            )
    credential = settings.get("AzureWebJobsStorage__credential")
    if credential is not None and string_value(credential) != "managedidentity":
        problems.append("app setting AzureWebJobsStorage__credential must be 'managedidentity'")
    for name in (
        "PYTHON_ENABLE_INIT_INDEXING",  # HTTP streams (function_app.py) need indexing at worker init
        "AzureWebJobsStorage__credential",
        "AzureWebJobsStorage__clientId",
        "AzureWebJobsStorage__blobServiceUri",
        "AzureWebJobsStorage__queueServiceUri",
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
    ):
        if name not in settings:
            problems.append(f"host setting {name} is not set on the function app")
    if "AzureWebJobsStorage__tableServiceUri" in settings:
        # Host diagnostic events in tables need Table Data Contributor on the account (= write on models).
        problems.append(
            "host setting AzureWebJobsStorage__tableServiceUri: the identity has no account-wide table role"
        )
    if (
        "PYTHON_ENABLE_INIT_INDEXING" in settings
        and string_value(settings["PYTHON_ENABLE_INIT_INDEXING"]) != "1"
    ):
        problems.append("host setting PYTHON_ENABLE_INIT_INDEXING must be '1' (HTTP streams)")
    auth = text(settings.get("APPLICATIONINSIGHTS_AUTHENTICATION_STRING"))
    if auth and "Authorization=AAD" not in auth:
        problems.append("APPLICATIONINSIGHTS_AUTHENTICATION_STRING must use Authorization=AAD")
    # Wiring: each endpoint comes from the module that owns it.
    wiring = {
        "AZURE_CLIENT_ID": ("identity.bicep", "clientId"),
        "TABLES_ENDPOINT": ("storage.bicep", "tableEndpoint"),
        "AZURE_OPENAI_ENDPOINT": ("openai.bicep", "endpoint"),
    }
    for name, (module_file, output) in wiring.items():
        wired = settings.get(name)
        expected = f"{infra.module_decl(module_file).name}.outputs.{output}"
        if wired is not None and text(wired) != expected:
            problems.append(f"app setting {name} must be {expected}, is {text(wired)}")
    # The token may go to the deployed account only: its endpoint's host is the one suffix.
    pinned = text(settings.get("ALLOWED_ENDPOINT_SUFFIXES"))
    endpoint = f"{infra.module_decl('openai.bicep').name}.outputs.endpoint"
    if pinned and pinned != f"'.${{split({endpoint}, '/')[2]}}'":
        problems.append(f"app setting ALLOWED_ENDPOINT_SUFFIXES must be the host of {endpoint}, is {pinned}")
    return problems


def check_main_contract(infra: Infra) -> list[str]:
    """Outputs azd and the hook need, tables created, parameters file in step with main.bicep."""
    problems = []
    main = infra.main
    if main.target_scope != "subscription":
        problems.append("main.bicep must have targetScope = 'subscription'")
    if not main.resources("Microsoft.Resources/resourceGroups"):
        problems.append("main.bicep must create the resource group")
    outputs = main.by_kind("output")
    for name in (
        "FUNCTION_URL",
        "TABLES_ENDPOINT",
        "AZURE_OPENAI_ENDPOINT",
        "AZURE_OPENAI_DEPLOYMENTS",
        "MODELS_TABLE",
    ):
        if name not in outputs:
            problems.append(f"main.bicep: output {name} is missing")
    storage = infra.module_decl("storage.bicep")
    tables = prop(storage.body, "params.tableNames")
    given = {text(n) for n in named(tables)} if tables is not None and tables.type == "array" else set()
    for param in ("modelsTableName", "costsTableName", "healthTableName", "costsRollupTableName"):
        if param not in given:
            problems.append(f"main.bicep: table {param} is not created (storage tableNames)")
    parameters_file = infra.folder / "main.parameters.json"
    try:
        parameters = json.loads(parameters_file.read_text(encoding="utf-8"))["parameters"]
    except (OSError, ValueError, KeyError) as exc:
        return [*problems, f"main.parameters.json: {exc}"]
    params = main.by_kind("param")
    for name, entry in parameters.items():
        if name not in params:
            problems.append(f"main.parameters.json: {name} is not a param of main.bicep")
        value = entry.get("value")
        if (
            isinstance(value, str)
            and "$" in value
            and not re.fullmatch(r"\$\{[A-Z][A-Z0-9_]*(=[^}]*)?\}", value)
        ):
            problems.append(f"main.parameters.json: {name}: {value!r} is not ${{VAR}} or ${{VAR=default}}")
    for name, decl in params.items():
        if _param_required(decl) and name not in parameters:
            problems.append(f"main.parameters.json: required param {name} is not given")
    return problems


CHECKS: list[Callable[[Infra], list[str]]] = [
    check_symbols,
    check_imports,
    check_modules,
    check_api_versions,
    check_security,
    check_role_assignments,
    check_app_settings,
    check_main_contract,
]


def check_infra(folder: Path) -> list[str]:
    infra, problems = load_infra(folder)
    if problems:  # the other checks assume a clean parse
        return problems
    for check in CHECKS:
        try:
            problems.extend(check(infra))
        except (LookupError, NotLiteral, StopIteration) as exc:
            problems.append(f"{check.__name__}: {exc!r}")
    return problems


# ---------------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def infra() -> Infra:
    loaded, problems = load_infra(INFRA)
    assert problems == []
    return loaded


def test_every_bicep_file_parses_without_error_or_missing_nodes() -> None:
    files = sorted(INFRA.rglob("*.bicep"))
    assert {f.name for f in files} >= {
        "main.bicep",
        "identity.bicep",
        "monitoring.bicep",
        "storage.bicep",
        "openai.bicep",
        "function-app.bicep",
        "rbac.bicep",
    }
    _, problems = load_infra(INFRA)
    assert problems == []


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_infra_passes(check: Callable[[Infra], list[str]], infra: Infra) -> None:
    assert check(infra) == []


def test_walker_sees_declarations_references_and_types(infra: Infra) -> None:
    main = infra.main
    assert {"environmentName", "location", "deployments"} <= set(main.by_kind("param"))
    assert {"identity", "storage", "openAi", "functionApp", "rbac", "monitoring"} == set(
        main.by_kind("module")
    )
    assert main.by_kind("resource")["rg"].type_string == "Microsoft.Resources/resourceGroups@2024-03-01"
    refs = collect_refs(main)
    symbols = {name for name, _ in refs.symbols}
    assert {"rg", "identity", "storage", "deployments", "resourceToken"} <= symbols
    assert "outputs" not in symbols and "name" not in symbols  # properties and keys are not references
    assert "modelDeployment" in {name for name, _ in refs.types}
    assert {"uniqueString", "union", "empty", "string"} <= {name for name, _ in refs.functions}
    openai = infra.file("modules/openai.bicep")
    loop_refs = {name for name, _ in collect_refs(openai).symbols}
    assert "deployment" not in loop_refs  # loop variable, in scope inside the loop only
    function_app = infra.file("modules/function-app.bicep")
    assert "settings" in function_app.by_kind("resource")  # nested child resource
    assert prop_literal(function_app.by_kind("resource")["plan"].body, "sku") == {
        "name": "FC1",
        "tier": "FlexConsumption",
    }


def test_walker_scopes_lambdas_loops_and_namespaces(tmp_path: Path) -> None:
    source = """
param items array
@description('decorator arguments are expressions too: ${undeclaredInDecorator}')
var names = map(items, item => item.name)
var pairs = [for (item, i) in items: '${i}-${item}']
var bad = map(items, x => y)
resource st 'Microsoft.Storage/storageAccounts@2025-01-01' existing = {
  name: names[0]
  resource blobs 'blobServices' existing = {
    name: 'default'
  }
}
output n int = length(names) + length(pairs) + length(bad) + length(item)
output s string = sys.concat(st.name, blobs.name, st.listKeys().keys[0].value)
"""
    path = tmp_path / "t.bicep"
    path.write_text(source)
    bicep = parse_file(path)
    refs = collect_refs(bicep)
    undeclared = sorted(name for name, _ in refs.symbols if name not in bicep.names())
    assert undeclared == ["item", "undeclaredInDecorator", "y"]  # lambda/loop variables do not leak
    assert "concat" in {name for name, _ in refs.functions}
    assert [name for name, _ in refs.methods] == ["listKeys"]
    assert {d.name for d in bicep.decls if d.kind == "resource"} == {"st", "blobs"}
    with pytest.raises(NotLiteral):
        literal(bicep.by_kind("var")["pairs"].value)  # a for-expression is not a literal


def _break(folder: Path, file: str, old: str, new: str) -> None:
    path = folder / file
    source = path.read_text(encoding="utf-8")
    assert old in source, f"mutation anchor {old!r} not found in {file}"
    path.write_text(source.replace(old, new, 1), encoding="utf-8")


BROKEN = {
    "syntax error": (
        "modules/storage.bicep",
        "  sku: {\n    name: 'Standard_LRS'\n  }",
        "  sku: {\n    name: 'Standard_LRS'\n",
        "syntax error",
    ),
    "undeclared symbol": (
        "main.bicep",
        "storageAccountName: storage.outputs.name",
        "storageAccountName: storrage.outputs.name",
        "undeclared symbol 'storrage'",
    ),
    "undeclared loop variable outside its loop": (
        "modules/openai.bicep",
        "output endpoint string = account.properties.endpoint",
        "output endpoint string = deployment.name",
        "undeclared symbol 'deployment'",
    ),
    "misspelt function": (
        "main.bicep",
        "toLower(uniqueString(",
        "toLower(uniqeString(",
        "unknown function 'uniqeString'",
    ),
    "unused param": (
        "modules/identity.bicep",
        "param tags object = {}",
        "param tags object = {}\nparam unused string = ''",
        "unused param 'unused'",
    ),
    "missing module file": (
        "main.bicep",
        "'modules/rbac.bicep'",
        "'modules/rbac-assignments.bicep'",
        "does not exist",
    ),
    "unknown module param": (
        "main.bicep",
        "    instanceMemoryMB: instanceMemoryMB\n",
        "    instanceMemoryMB: instanceMemoryMB\n    memoryMB: 2048\n",
        "has no param 'memoryMB'",
    ),
    "missing required module param": (
        "main.bicep",
        "    identityId: identity.outputs.id\n",
        "",
        "required param 'identityId' not set",
    ),
    "unknown module output": (
        "main.bicep",
        "storage.outputs.tableEndpoint\n",
        "storage.outputs.tablesEndpoint\n",
        "has no output 'tablesEndpoint'",
    ),
    "import of a type that is not exported": (
        "modules/types.bicep",
        "@export()\n",
        "",
        "does not @export() 'modelDeployment'",
    ),
    "preview API version": (
        "modules/openai.bicep",
        "'Microsoft.CognitiveServices/accounts@2025-06-01' = {",
        "'Microsoft.CognitiveServices/accounts@2025-07-01-preview' = {",
        "not a GA API version",
    ),
    "unpinned API version": (
        "modules/identity.bicep",
        "@2023-01-31",
        "@2024-11-30",
        "pinned version is 2023-01-31",
    ),
    "shared key access enabled": (
        "modules/storage.bicep",
        "    allowSharedKeyAccess: false\n",
        "",
        "allowSharedKeyAccess must be False",
    ),
    "local auth on Azure OpenAI": (
        "modules/openai.bicep",
        "disableLocalAuth: true",
        "disableLocalAuth: false",
        "disableLocalAuth must be True",
    ),
    "local auth on Application Insights": (
        "modules/monitoring.bicep",
        "DisableLocalAuth: true",
        "DisableLocalAuth: false",
        "DisableLocalAuth must be True",
    ),
    "FTPS allowed": (
        "modules/function-app.bicep",
        "ftpsState: 'Disabled'",
        "ftpsState: 'FtpsOnly'",
        "ftpsState must be 'Disabled'",
    ),
    "deployments in parallel": ("modules/openai.bicep", "@batchSize(1)\n", "", "need @batchSize(1)"),
    "keys read with listKeys": (
        "modules/function-app.bicep",
        "AzureWebJobsStorage__credential: 'managedidentity'\n",
        "AzureWebJobsStorage__credential: 'managedidentity'\n"
        "  AzureWebJobsSecretStorageKey: storage.listKeys().keys[0].value\n",
        "listKeys() reads keys",
    ),
    "key-bearing output": (
        "modules/storage.bicep",
        "output id string = storage.id",
        "output primaryKey string = storage.id",
        "looks like a secret",
    ),
    "wrong role GUID": (
        "modules/rbac.bicep",
        "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
        "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa4",
        "not a verified built-in role id",
    ),
    "role GUID under the wrong name": (
        "modules/rbac.bicep",
        "storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'",
        "storageQueueDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'",
        "the built-in id is 974c5e8b",
    ),
    "role assignment name not guid(scope, principal, role)": (
        "modules/rbac.bicep",
        "name: guid(openAi.id, appPrincipalId, roles.cognitiveServicesOpenAIUser)",
        "name: guid(openAi.id, roles.cognitiveServicesOpenAIUser)",
        "name must be guid(openAi.id",
    ),
    "app identity loses a role": (
        "modules/rbac.bicep",
        "var appAccountRoles = [\n  roles.storageBlobDataOwner\n  roles.storageQueueDataContributor\n]",
        "var appAccountRoles = [\n  roles.storageBlobDataOwner\n]",
        "appPrincipalId lacks roles: storageQueueDataContributor",
    ),
    "role at the wrong scope": (
        "modules/rbac.bicep",
        "  scope: applicationInsights\n  properties: {\n    principalId: appPrincipalId",
        "  scope: storage\n  properties: {\n    principalId: appPrincipalId",
        "monitoringMetricsPublisher must be scoped to Microsoft.Insights/components",
    ),
    "app gets table rights on the whole account": (
        "modules/rbac.bicep",
        "var appAccountRoles = [\n  roles.storageBlobDataOwner\n",
        "var appAccountRoles = [\n  roles.storageBlobDataOwner\n  roles.storageTableDataContributor\n",
        f"storageTableDataContributor must be scoped to {TABLE} only",
    ),
    "app may write the models table": (
        "main.bicep",
        "    dataTableNames: [\n      costsTableName\n",
        "    dataTableNames: [\n      modelsTableName\n      costsTableName\n",
        "the models table must not be in dataTableNames",
    ),
    "app reads models through the wrong role": (
        "modules/rbac.bicep",
        "  scope: modelsTable\n",
        "  scope: storage\n",
        f"storageTableDataReader must be scoped to {TABLE} only",
    ),
    "required app setting missing": (
        "main.bicep",
        "        TABLES_ENDPOINT: storage.outputs.tableEndpoint\n",
        "",
        "app setting TABLES_ENDPOINT is not set",
    ),
    "misspelt app setting": (
        "main.bicep",
        "        COSTS_TABLE: costsTableName\n",
        "        COST_TABLE: costsTableName\n",
        "COST_TABLE is not a field",
    ),
    "connection string setting": (
        "main.bicep",
        "        MODELS_TABLE: modelsTableName\n",
        "        MODELS_TABLE: modelsTableName\n"
        "        TABLES_CONNECTION_STRING: storage.outputs.tableEndpoint\n",
        "no connection strings",
    ),
    "HTTP streams without init indexing": (
        "modules/function-app.bicep",
        "PYTHON_ENABLE_INIT_INDEXING: '1'\n",
        "",
        "host setting PYTHON_ENABLE_INIT_INDEXING is not set",
    ),
    "HTTP streams with init indexing off": (
        "modules/function-app.bicep",
        "PYTHON_ENABLE_INIT_INDEXING: '1'\n",
        "PYTHON_ENABLE_INIT_INDEXING: '0'\n",
        "PYTHON_ENABLE_INIT_INDEXING must be '1'",
    ),
    "roll-up schedule default drifts from the code": (
        "main.bicep",
        "param rollupSchedule string = '0 */15 * * * *'",
        "param rollupSchedule string = '0 0 * * * *'",
        "ROLLUP_SCHEDULE defaults to",
    ),
    "Flex-deprecated setting": (
        "modules/function-app.bicep",
        "AzureWebJobsStorage__credential: 'managedidentity'\n",
        "AzureWebJobsStorage__credential: 'managedidentity'\n  FUNCTIONS_WORKER_RUNTIME: 'python'\n",
        "deprecated on the Flex Consumption plan",
    ),
    "table default drifts from the code": (
        "main.bicep",
        "param modelsTableName string = 'models'",
        "param modelsTableName string = 'routermodels'",
        "defaults to 'routermodels'",
    ),
    "setting wired to the wrong endpoint": (
        "main.bicep",
        "        TABLES_ENDPOINT: storage.outputs.tableEndpoint\n",
        "        TABLES_ENDPOINT: storage.outputs.blobEndpoint\n",
        "TABLES_ENDPOINT must be storage.outputs.tableEndpoint",
    ),
    "table not created": (
        "main.bicep",
        "      healthTableName\n      costsRollupTableName\n      qualityTableName\n    ]\n  }\n}",
        "      costsRollupTableName\n      qualityTableName\n    ]\n  }\n}",
        "healthTableName is not created",
    ),
    "token allowed beyond the deployed account": (
        "main.bicep",
        "ALLOWED_ENDPOINT_SUFFIXES: '.${split(openAi.outputs.endpoint, '/')[2]}'",
        "ALLOWED_ENDPOINT_SUFFIXES: '.openai.azure.com'",
        "ALLOWED_ENDPOINT_SUFFIXES must be the host of openAi.outputs.endpoint",
    ),
    "host told to use tables": (
        "modules/function-app.bicep",
        "AzureWebJobsStorage__credential: 'managedidentity'\n",
        "AzureWebJobsStorage__credential: 'managedidentity'\n"
        "  AzureWebJobsStorage__tableServiceUri: storage.properties.primaryEndpoints.table\n",
        "the identity has no account-wide table role",
    ),
    "parameters file names an unknown param": (
        "main.parameters.json",
        '"classifierModel": {',
        '"classifierModl": {',
        "classifierModl is not a param",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN), ids=list(BROKEN))
def test_broken_template_is_caught(case: str, tmp_path: Path) -> None:
    broken = tmp_path / "infra"
    shutil.copytree(INFRA, broken)
    file, old, new, expected = BROKEN[case]
    _break(broken, file, old, new)
    problems = check_infra(broken)
    assert any(expected in p for p in problems), (
        f"{case}: expected a problem containing {expected!r}, got {problems}"
    )


def test_pristine_copy_has_no_problems(tmp_path: Path) -> None:
    shutil.copytree(INFRA, tmp_path / "infra")
    assert check_infra(tmp_path / "infra") == []


# --- catalogue seeding -----------------------------------------------------------------------------------


def _catalog_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("infra_catalog", INFRA / "hooks" / "catalog.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["infra_catalog"] = module
    spec.loader.exec_module(module)
    return module


def default_deployments(infra: Infra) -> list[dict[str, Any]]:
    value = literal(infra.main.by_kind("param")["deployments"].value)
    assert isinstance(value, list)
    return value


def test_default_deployments_match_the_type_and_the_sample_catalogue(infra: Infra) -> None:
    deployments = default_deployments(infra)
    type_decl = infra.file("modules/types.bicep").by_kind("type")["modelDeployment"]
    type_fields = set(properties(named(type_decl.node)[-1]))
    optional = {"catalogModel", "priority", "weight", "spilloverDeployment"}  # backends (issue 18)
    assert type_fields == {"name", "model", "version", "sku", "capacity"} | optional
    type_fields -= optional
    sample = {m["name"]: m for m in json.loads((ROOT / "models.sample.json").read_text())["models"]}
    assert len(deployments) >= 2
    for deployment in deployments:
        assert set(deployment) == type_fields
        assert deployment["model"] in sample, f"{deployment['model']} is not in models.sample.json"
    costs = [sample[d["model"]]["cost_per_1k_tokens"] for d in deployments]
    assert costs[0] == min(costs) and costs[-1] == max(costs)  # a cheap one first, a strong one last
    assert sample[deployments[-1]["model"]]["max_complexity"] == 1.0


def test_catalogue_from_the_deployments_lines_up_with_prices_and_loads(infra: Infra) -> None:
    catalog = _catalog_module()
    deployments = default_deployments(infra)
    built = catalog.build_catalog(deployments, catalog.load_prices())
    sample = {m["name"]: m for m in json.loads((ROOT / "models.sample.json").read_text())["models"]}
    assert [m["name"] for m in built["models"]] == [d["name"] for d in deployments]
    for entry in built["models"]:
        assert entry["deployment"] == entry["name"]
        expected = sample[entry["name"]]
        for key in (
            "cost_per_1k_tokens",
            "input_cost_per_1k",
            "output_cost_per_1k",
            "avg_latency_ms",
            "max_complexity",
            "context_window",
        ):
            assert math.isclose(entry[key], expected[key], rel_tol=1e-9), (entry["name"], key)
    from router.models.config import ModelConfig

    for entry in built["models"]:
        ModelConfig(**entry)  # the router accepts every generated entry


def test_deployments_sharing_a_catalogue_model_become_its_backends() -> None:
    catalog = _catalog_module()
    deployments = [
        {"name": "gpt-4.1-ptu", "model": "gpt-4.1", "version": "v", "sku": "GlobalProvisionedManaged",
         "capacity": 50, "catalogModel": "gpt-4.1", "spilloverDeployment": "gpt-4.1"},
        {"name": "gpt-4.1", "model": "gpt-4.1", "version": "v", "sku": "GlobalStandard", "capacity": 20},
        {"name": "gpt-4.1-nano", "model": "gpt-4.1-nano", "version": "v", "sku": "GlobalStandard",
         "capacity": 9},
    ]  # fmt: skip
    built = catalog.build_catalog(deployments, catalog.load_prices())
    by_name = {m["name"]: m for m in built["models"]}
    assert set(by_name) == {"gpt-4.1", "gpt-4.1-nano"}
    assert "backends" not in by_name["gpt-4.1-nano"]  # one plain deployment: the schema before backends
    assert by_name["gpt-4.1"]["deployment"] == "gpt-4.1-ptu"
    assert by_name["gpt-4.1"]["backends"] == [
        {"deployment": "gpt-4.1-ptu", "priority": 1, "weight": 1, "provisioned": True,
         "spillover_deployment": "gpt-4.1"},
        {"deployment": "gpt-4.1", "priority": 2, "weight": 1, "provisioned": False,
         "tokens_per_minute": 20000},
    ]  # fmt: skip
    from router.models.config import ModelConfig

    for entry in built["models"]:
        ModelConfig(**entry)  # the router accepts every generated entry


def test_price_table_agrees_with_the_sample_catalogue() -> None:
    catalog = _catalog_module()
    prices = catalog.load_prices()
    sample = {m["name"]: m for m in json.loads((ROOT / "models.sample.json").read_text())["models"]}
    for model, price in prices.items():
        if model in sample:
            blended = catalog.blended_cost(price["input_cost_per_1k"], price["output_cost_per_1k"])
            assert math.isclose(blended, sample[model]["cost_per_1k_tokens"], rel_tol=1e-9), model
            assert price["max_complexity"] == sample[model]["max_complexity"], model


def test_catalogue_generator_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = _catalog_module()
    out = tmp_path / "env" / "models.json"
    deployments = [
        {
            "name": "cheap",
            "model": "gpt-4.1-nano",
            "version": "2025-04-14",
            "sku": "GlobalStandard",
            "capacity": 1,
        }
    ]
    monkeypatch.setenv("AZURE_OPENAI_DEPLOYMENTS", json.dumps(deployments))
    assert catalog.main(["--out", str(out)]) == 0
    written = json.loads(out.read_text())
    assert written["models"][0]["name"] == "cheap"
    assert written["models"][0]["cost_per_1k_tokens"] == pytest.approx(0.000175)
    unknown = json.dumps(
        [*deployments, {"name": "x", "model": "gpt-9", "version": "1", "sku": "Standard", "capacity": 1}]
    )
    assert catalog.main(["--deployments", unknown]) == 1
    assert "gpt-9" in capsys.readouterr().err
    assert catalog.main(["--deployments", json.dumps(deployments * 2)]) == 1
    assert "used twice" in capsys.readouterr().err
    monkeypatch.delenv("AZURE_OPENAI_DEPLOYMENTS")
    assert catalog.main([]) == 2


def test_bicep_json_output_is_what_the_generator_reads(infra: Infra) -> None:
    output = infra.main.by_kind("output")["AZURE_OPENAI_DEPLOYMENTS"]
    assert text(output.value) == "string(deployments)"


# --- azd wiring, hooks, workflow ---------------------------------------------------------------------------


def test_azure_yaml_declares_the_function_service_and_hook() -> None:
    config = yaml.safe_load((ROOT / "azure.yaml").read_text())
    api = config["services"]["api"]
    assert {k: api[k] for k in ("project", "language", "host")} == {
        "project": ".",
        "language": "python",
        "host": "function",
    }
    # The package is built from requirements.lock with --require-hashes (tests/test_trust.py), not remotely.
    assert api["remoteBuild"] is False
    for platform, script in (("posix", "package.sh"), ("windows", "package.ps1")):
        run = api["hooks"]["prepackage"][platform]["run"]
        assert run.endswith(script) and (ROOT / run).is_file()
    assert config["infra"] == {"provider": "bicep", "path": "infra", "module": "main"}
    hook = config["hooks"]["postprovision"]
    for platform, script in (("posix", "postprovision.sh"), ("windows", "postprovision.ps1")):
        run = hook[platform]["run"]
        assert run.endswith(script) and (ROOT / run).is_file()
    service_tag = prop(
        infra_file("modules/function-app.bicep").by_kind("resource")["functionApp"].body, "tags"
    )
    assert "'azd-service-name': 'api'" in text(service_tag)  # azd finds the app by this tag


def infra_file(name: str) -> BicepFile:
    return parse_file(INFRA / name)


STUB_PYTHON = """#!/bin/sh
# Stands in for python: runs the catalogue generator for real, records `-m router ...` calls.
if [ "$1" = "-m" ]; then
  echo "$*" >> "$STUB_DIR/calls"
  env > "$STUB_DIR/env"
  n=$(wc -l < "$STUB_DIR/calls")
  [ "$n" -gt "${STUB_FAILURES:-0}" ]
  exit $?
fi
exec "$REAL_PYTHON" "$@"
"""


def run_hook(
    tmp_path: Path, deployments: str, failures: int = 0
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run infra/hooks/postprovision.sh from a copy of the repo layout with python stubbed."""
    shutil.copytree(INFRA, tmp_path / "infra")
    stub = tmp_path / "stub-python"
    stub.write_text(STUB_PYTHON)
    stub.chmod(0o755)
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHON": str(stub),
        "REAL_PYTHON": sys.executable,
        "STUB_DIR": str(tmp_path),
        "STUB_FAILURES": str(failures),
        "AZURE_ENV_NAME": "test-env",
        "AZURE_CLIENT_ID": "the-apps-identity",
        "TABLES_ENDPOINT": "https://stexample.table.core.windows.net/",
        "AZURE_OPENAI_DEPLOYMENTS": deployments,
        "POSTPROVISION_ATTEMPTS": "2",
        "POSTPROVISION_RETRY_SECONDS": "0",
    }
    script = tmp_path / "infra" / "hooks" / "postprovision.sh"
    result = subprocess.run(
        ["sh", str(script)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    return result, tmp_path


def test_postprovision_hook_seeds_the_catalogue_as_the_deploying_user(tmp_path: Path, infra: Infra) -> None:
    deployments = json.dumps(default_deployments(infra))  # what string(deployments) outputs
    result, root = run_hook(tmp_path, deployments)
    assert result.returncode == 0, result.stderr
    catalog = json.loads((root / ".azure" / "test-env" / "models.json").read_text())
    assert [m["name"] for m in catalog["models"]] == [d["name"] for d in default_deployments(infra)]
    assert (root / "calls").read_text().split("\n")[0] == "-m router models load .azure/test-env/models.json"
    seen = dict(line.split("=", 1) for line in (root / "env").read_text().splitlines() if "=" in line)
    assert "AZURE_CLIENT_ID" not in seen  # DefaultAzureCredential, not the app's managed identity
    assert seen["TABLES_ENDPOINT"] == "https://stexample.table.core.windows.net/"
    assert seen["MODELS_TABLE"] == "models"


def test_postprovision_hook_retries_then_fails(tmp_path: Path, infra: Infra) -> None:
    deployments = json.dumps(default_deployments(infra))
    result, root = run_hook(tmp_path, deployments, failures=1)
    assert result.returncode == 0 and "attempt 1/2" in result.stderr
    result, root = run_hook(tmp_path / "again", deployments, failures=5)
    assert result.returncode == 1 and "could not load" in result.stderr
    assert len((root / "calls").read_text().splitlines()) == 2


def test_postprovision_hook_refuses_a_model_without_prices(tmp_path: Path) -> None:
    unknown = json.dumps([{"name": "x", "model": "gpt-9", "version": "1", "sku": "Standard", "capacity": 1}])
    result, root = run_hook(tmp_path, unknown)
    assert result.returncode != 0 and "gpt-9" in result.stderr
    assert not (root / "calls").exists()  # nothing loaded


def test_postprovision_scripts_are_wired_the_same_way() -> None:
    sh = (INFRA / "hooks" / "postprovision.sh").read_text()
    assert sh.startswith("#!/bin/sh") and (INFRA / "hooks" / "postprovision.sh").stat().st_mode & 0o111
    ps1 = (INFRA / "hooks" / "postprovision.ps1").read_text()
    for script in (sh, ps1):
        assert "infra/hooks/catalog.py --out" in script
        assert "-m router models load" in script
        assert "AZURE_CLIENT_ID" in script


def test_workflow_builds_every_bicep_file_with_the_cli() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "bicep.yml").read_text())
    steps = "\n".join(str(step.get("run", "")) for job in workflow["jobs"].values() for step in job["steps"])
    assert "az bicep build --file" in steps and "infra/modules/*.bicep" in steps
    assert "az bicep lint" in steps
    assert "pytest tests/test_infra.py" in steps
    assert json.loads((INFRA / "bicepconfig.json").read_text())["analyzers"]["core"]["enabled"] is True
