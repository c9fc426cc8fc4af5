"""The wire contract from Python: storage URIs, OME label/ConfigMap naming, ConfigMap entry JSON."""

from __future__ import annotations

import decimal
import hashlib
import json
import math
import random
import struct

import pytest

import modelagent
from modelagent import (
    InvalidStorageUri,
    ModelAgentError,
    ModelConfig,
    ModelEntry,
    ModelEntryError,
    ModelProgress,
    ModelStatus,
    NameVersion,
    StorageUri,
)

# ---------------------------------------------------------------------------------------------------------
# Storage URIs
# ---------------------------------------------------------------------------------------------------------

PARSED = [
    (
        "oci://n/myns/b/mybucket/o/path/to/model",
        "OciStorageUri",
        {"namespace": "myns", "bucket": "mybucket", "prefix": "path/to/model", "region": ""},
    ),
    (
        "oci://myns@us-ashburn-1/mybucket/models",
        "OciStorageUri",
        {"namespace": "myns", "bucket": "mybucket", "prefix": "models", "region": "us-ashburn-1"},
    ),
    ("oci://mybucket", "OciStorageUri", {"namespace": "", "bucket": "mybucket", "prefix": "", "region": ""}),
    ("hf://meta-llama/Llama-2-7b-hf", "HuggingFaceStorageUri", {"repo_id": "meta-llama/Llama-2-7b-hf", "revision": "main"}),
    ("hf://gpt2@refs/pr/1", "HuggingFaceStorageUri", {"repo_id": "gpt2", "revision": "refs/pr/1"}),
    ("pvc://my-pvc/models/llama2", "PvcStorageUri", {"namespace": "", "name": "my-pvc", "subpath": "models/llama2"}),
    ("pvc://team:my-pvc/m", "PvcStorageUri", {"namespace": "team", "name": "my-pvc", "subpath": "m"}),
    ("local:///opt/models/llama", "LocalStorageUri", {"path": "/opt/models/llama"}),
    (
        "vendor://nvidia/models/llama",
        "VendorStorageUri",
        {"vendor": "nvidia", "resource_type": "models", "resource_path": "llama"},
    ),
    ("s3://my-bucket@us-west-2/models", "S3StorageUri", {"bucket": "my-bucket", "region": "us-west-2", "prefix": "models"}),
    ("gs://my-bucket/models", "GcsStorageUri", {"bucket": "my-bucket", "prefix": "models"}),
    (
        "az://acct.blob.core.windows.net/models/llama",
        "AzureStorageUri",
        {"account": "acct", "container": "models", "path": "llama"},
    ),
    ("github://owner/repo", "GitHubStorageUri", {"owner": "owner", "repo": "repo", "tag": "latest"}),
]


@pytest.mark.parametrize(("uri", "class_name", "fields"), PARSED)
def test_parse_storage_uri_gives_typed_values(uri: str, class_name: str, fields: dict[str, str]) -> None:
    parsed = modelagent.parse_storage_uri(uri)
    assert type(parsed).__name__ == class_name
    assert isinstance(parsed, StorageUri)
    assert parsed.uri == uri
    assert str(parsed) == uri
    for name, value in fields.items():
        assert getattr(parsed, name) == value, name
    assert parsed.to_dict() == {"scheme": parsed.scheme, "uri": uri, **fields}
    assert repr(parsed) == f"{class_name}(" + ", ".join(f"{k}={v!r}" for k, v in fields.items()) + ")"


def test_scheme_strings() -> None:
    schemes = [modelagent.parse_storage_uri(uri).scheme for uri, _, _ in PARSED]
    assert schemes == ["oci", "oci", "oci", "hf", "hf", "pvc", "pvc", "local", "vendor", "s3", "gs", "az", "github"]
    assert modelagent.HuggingFaceStorageUri.scheme == "hf"


def test_equality_is_by_location() -> None:
    parse = modelagent.parse_storage_uri
    assert parse("hf://gpt2") == parse("hf://gpt2@main")
    assert hash(parse("hf://gpt2")) == hash(parse("hf://gpt2@main"))
    assert parse("oci://bucket/models/") == parse("oci://bucket/models")
    assert parse("hf://gpt2") != parse("hf://gpt2@v2")
    assert parse("gs://bucket/models") != parse("s3://bucket/models")
    assert parse("hf://gpt2") != "hf://gpt2"  # type: ignore[comparison-overlap]
    assert len({parse("hf://gpt2"), parse("hf://gpt2@main"), parse("hf://org/gpt2")}) == 2


def test_storage_uri_objects_are_read_only_and_not_constructible() -> None:
    parsed = modelagent.parse_storage_uri("hf://org/name")
    assert isinstance(parsed, modelagent.HuggingFaceStorageUri)
    with pytest.raises(AttributeError):
        parsed.revision = "v2"  # type: ignore[misc]
    with pytest.raises(TypeError):
        StorageUri()


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        ("invalid://storage/uri", "unknown storage type 'invalid'"),
        ("", "unknown storage type"),
        ("meta-llama/Llama-2-7b", "unknown storage type"),
        ("oci://", "missing bucket name"),
        ("oci://n/myns/b/mybucket", "too short"),
        ("oci://n/myns/b/mybucket/x/p", "'o' marker"),
        ("oci://myns@region", "missing bucket name"),
        ("hf://", "missing model ID"),
        ("hf://@main", "model ID cannot be empty"),
        ("pvc://my-pvc", "missing subpath"),
        ("pvc://my-pvc/", "missing subpath"),
        ("pvc:///results", "missing PVC name"),
        ("pvc://:pvc/x", "empty namespace"),
        ("pvc://a:b:c/x", "more than one ':'"),
        ("pvc://Bad_NS:pvc/x", "not a valid Kubernetes namespace"),
        ("local://models/llama", "is relative"),
        ("vendor://openai/models", "missing resource path"),
        ("oci://bucket/a/../b", "'..' segment"),
        ("oci://bucket/a//b", "empty segment"),
        ("hf://org/name ", "whitespace"),
        ("hf://org/na\x00me", "NUL"),
    ],
)
def test_invalid_storage_uris(uri: str, fragment: str) -> None:
    with pytest.raises(InvalidStorageUri) as info:
        modelagent.parse_storage_uri(uri)
    assert fragment in str(info.value)
    assert isinstance(info.value, ModelAgentError)
    if uri and "\x00" not in uri:
        assert repr(uri)[1:-1] in str(info.value)


# ---------------------------------------------------------------------------------------------------------
# OME naming
# ---------------------------------------------------------------------------------------------------------


def reference_truncate(s: str, max_len: int) -> str:
    """Reference section 2.5's truncateWithHash, written from its description."""
    if len(s) <= max_len:
        return s
    h = hashlib.sha256(s.encode()).hexdigest()[:8]
    if max_len - 9 <= 0:
        return h[:max_len]
    return h + "-" + s[len(s) - (max_len - 9) :]


def reference_suffix(kind: str, name: str, namespace: str, budget: int) -> str:
    if kind == "ClusterBaseModel":
        return "clusterbasemodel." + reference_truncate(name, budget - 17)
    available = budget - 11
    if len(namespace) + len(name) <= available:
        return f"{namespace}.basemodel.{name}"
    ns_budget = len(namespace) if len(namespace) <= 8 else 8
    return f"{reference_truncate(namespace, ns_budget)}.basemodel.{reference_truncate(name, available - ns_budget)}"


def test_worked_label_examples() -> None:
    key = modelagent.node_label_key
    assert key("ClusterBaseModel", "llama-3-1-8b-instruct") == "models.ome.io/clusterbasemodel.llama-3-1-8b-instruct"
    assert (
        key("ClusterBaseModel", "meta-llama-3-1-405b-instruct-fp8-dynamic")
        == "models.ome.io/clusterbasemodel.d30d2100-5b-instruct-fp8-dynamic"
    )
    assert key("BaseModel", "llama-3-8b", "default") == "models.ome.io/default.basemodel.llama-3-8b"
    assert (
        key("BaseModel", "meta-llama-3-1-70b-instruct", namespace="production-inference")
        == "models.ome.io/ea4a9b32.basemodel.meta-llama-3-1-70b-instruct"
    )
    assert modelagent.configmap_key("BaseModel", "llama-3-1-8b", "default") == "default.basemodel.llama-3-1-8b"


def random_name(rng: random.Random, length: int) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-."
    return rng.choice("abcxyz") + "".join(rng.choice(alphabet) for _ in range(max(0, length - 2))) + rng.choice("0z")


def test_naming_matches_the_reference_rules_around_every_boundary() -> None:
    rng = random.Random(20240501)
    lengths = [1, 2, 7, 8, 9, 10, 20, 29, 30, 31, 32, 33, 37, 38, 39, 40, 63, 100, 226, 227, 233, 234, 235, 236, 237, 242, 243, 253]
    checked = 0
    for _ in range(6):
        for name_len in lengths:
            name = random_name(rng, name_len)
            expected = reference_suffix("ClusterBaseModel", name, "", 49)
            assert modelagent.node_label_key("ClusterBaseModel", name) == "models.ome.io/" + expected
            assert modelagent.configmap_key("ClusterBaseModel", name) == reference_suffix("ClusterBaseModel", name, "", 253)
            for ns_len in (1, 7, 8, 9, 30, 63):
                ns = random_name(rng, ns_len).replace(".", "-")
                label = modelagent.node_label_key("BaseModel", name, ns)
                assert label == "models.ome.io/" + reference_suffix("BaseModel", name, ns, 49), (name, ns)
                assert modelagent.configmap_key("BaseModel", name, ns) == reference_suffix("BaseModel", name, ns, 253)
                assert modelagent.is_valid_label_key(label), modelagent.label_key_problem(label)
                assert len(label.split("/", 1)[1]) <= 49
                checked += 1
    assert checked == 6 * len(lengths) * 6


def test_truncate_with_hash() -> None:
    s = "production-inference-namespace"
    for max_len in (0, 1, 8, 9, 10, 29, 30, 31):
        assert modelagent.truncate_with_hash(s, max_len) == reference_truncate(s, max_len)


def test_naming_argument_errors() -> None:
    with pytest.raises(ValueError, match="'BaseModel' or 'ClusterBaseModel'"):
        modelagent.node_label_key("basemodel", "x", "default")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs a namespace"):
        modelagent.node_label_key("BaseModel", "x")
    with pytest.raises(ValueError, match="cluster-scoped"):
        modelagent.configmap_key("ClusterBaseModel", "x", "default")
    with pytest.raises(ValueError, match="must not be empty"):
        modelagent.configmap_key("ClusterBaseModel", "")


def test_parse_configmap_key() -> None:
    assert modelagent.parse_configmap_key("clusterbasemodel.llama") == ("ClusterBaseModel", None, "llama")
    assert modelagent.parse_configmap_key("team-a.basemodel.llama") == ("BaseModel", "team-a", "llama")
    assert modelagent.parse_configmap_key("unrelated") is None
    key = modelagent.configmap_key("BaseModel", "llama-3", "team-a")
    assert modelagent.parse_configmap_key(key) == ("BaseModel", "team-a", "llama-3")


def test_label_values_and_validation() -> None:
    assert [modelagent.node_label_value(s) for s in ModelStatus] == ["Ready", "Updating", "Failed", None]
    with pytest.raises(ValueError):
        modelagent.node_label_value("Pending")
    assert modelagent.is_valid_label_value("Ready")
    assert not modelagent.is_valid_label_value("x" * 64)
    assert modelagent.label_value_problem("ok") is None
    assert "longer than 63" in (modelagent.label_value_problem("x" * 64) or "")
    assert modelagent.is_valid_label_key("models.ome.io/default.basemodel.llama")
    assert not modelagent.is_valid_label_key("models.ome.io/" + "x" * 64)
    assert "more than one '/'" in (modelagent.label_key_problem("a/b/c") or "")
    assert modelagent.is_valid_configmap_key("default.basemodel.llama")
    assert not modelagent.is_valid_configmap_key("..x")
    assert modelagent.configmap_key_problem("a b") is not None


# ---------------------------------------------------------------------------------------------------------
# ConfigMap entries
# ---------------------------------------------------------------------------------------------------------

ILLUSTRATIVE = (
    '{"name":"llama-3-1-8b","status":"Ready","config":{"modelType":"llama","modelArchitecture":"LlamaForCausalLM",'
    '"modelFramework":{"name":"transformers","version":"4.43.0.dev0"},"modelFormat":{"name":"safetensors",'
    '"version":"1.0.0"},"modelParameterSize":"8.03B","maxTokens":131072,"modelCapabilities":["CHAT"],'
    '"decodedModelConfiguration":{"architecture":"LlamaForCausalLM","context_length":131072,"has_vision":false,'
    '"model_size_bytes":16060522496,"model_type":"llama","parameter_count":"8.03B","torch_dtype":"bfloat16",'
    '"transformers_version":"4.43.0.dev0"}}}'
)


def test_illustrative_entry_round_trips_byte_identically() -> None:
    entry = ModelEntry.from_json(ILLUSTRATIVE, key="default.basemodel.llama-3-1-8b")
    assert entry.name == "llama-3-1-8b"
    assert entry.status == ModelStatus.READY
    assert entry.config is not None
    assert entry.config.model_framework == NameVersion("transformers", "4.43.0.dev0")
    assert entry.config.max_tokens == 131072
    assert entry.config.model_capabilities == ("CHAT",)
    assert entry.config.decoded_model_configuration["model_size_bytes"] == 16060522496
    assert entry.progress is None
    assert entry.to_json() == ILLUSTRATIVE
    assert ModelEntry.from_json(ILLUSTRATIVE.encode()).to_json() == ILLUSTRATIVE
    as_dict = entry.to_dict()
    assert as_dict == json.loads(ILLUSTRATIVE)
    assert list(as_dict["config"]) == list(json.loads(ILLUSTRATIVE)["config"])
    assert ModelEntry.from_dict(as_dict).to_json() == ILLUSTRATIVE
    assert ModelEntry(as_dict) == entry


def test_entry_built_in_python_matches_the_go_bytes() -> None:
    config = ModelConfig(
        model_type="llama",
        model_architecture="LlamaForCausalLM",
        model_framework=NameVersion("transformers", "4.43.0.dev0"),
        model_format=NameVersion("safetensors", "1.0.0"),
        model_parameter_size="8.03B",
        max_tokens=131072,
        model_capabilities=["CHAT"],
        decoded_model_configuration={
            "transformers_version": "4.43.0.dev0",
            "torch_dtype": "bfloat16",
            "parameter_count": "8.03B",
            "model_type": "llama",
            "model_size_bytes": 16060522496,
            "has_vision": False,
            "context_length": 131072,
            "architecture": "LlamaForCausalLM",
        },
    )
    assert ModelEntry("llama-3-1-8b", ModelStatus.READY, config).to_json() == ILLUSTRATIVE


def test_status_only_entry_and_omitted_fields() -> None:
    assert ModelEntry("m", "Updating").to_json() == '{"name":"m","status":"Updating"}'
    assert ModelEntry("m", "Failed", ModelConfig()).to_json() == '{"name":"m","status":"Failed","config":{}}'
    bert = ModelConfig(model_framework=NameVersion("transformers"), model_capabilities=[], max_tokens=0)
    assert bert.to_dict() == {"modelFramework": {"name": "transformers"}}


def test_edits_through_attributes_stick() -> None:
    entry = ModelEntry.from_json(ILLUSTRATIVE)
    assert entry.config is not None
    entry.config.max_tokens = 8192
    entry.config.model_capabilities = ["CHAT", "VISION"]
    entry.config.decoded_model_configuration = {"b": 1, "a": 2.0}
    entry.status = ModelStatus.UPDATING
    entry.progress = ModelProgress(phase="Downloading", total_bytes=100, total_files=2)
    entry.progress.completed_bytes = 50
    entry.progress.speed_bytes_per_sec = 12.5
    entry.progress.last_updated = "2024-05-01T12:00:00Z"
    data = json.loads(entry.to_json())
    assert data["status"] == "Updating"
    assert data["config"]["maxTokens"] == 8192
    assert data["config"]["modelCapabilities"] == ["CHAT", "VISION"]
    assert entry.to_json().count('"decodedModelConfiguration":{"a":2,"b":1}') == 1
    assert data["progress"] == {
        "phase": "Downloading",
        "totalBytes": 100,
        "completedBytes": 50,
        "totalFiles": 2,
        "completedFiles": 0,
        "speedBytesPerSec": 12.5,
        "lastUpdated": "2024-05-01T12:00:00Z",
    }
    entry.config = None
    entry.progress = None
    assert entry.to_json() == '{"name":"llama-3-1-8b","status":"Updating"}'


def test_views_are_read_only() -> None:
    entry = ModelEntry.from_json(ILLUSTRATIVE)
    assert entry.config is not None
    with pytest.raises(TypeError):
        entry.config.decoded_model_configuration["x"] = 1  # type: ignore[index]
    with pytest.raises(AttributeError):
        entry.config.model_capabilities.append("X")  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        entry.config.model_framework.version = "5"  # type: ignore[union-attr,misc]
    with pytest.raises(TypeError):
        entry.extra["x"] = 1  # type: ignore[index]


def test_unknown_fields_survive_a_round_trip() -> None:
    text = (
        '{"name":"m","status":"Ready","config":{"modelType":"llama","apiCapabilities":["OPENAI_V1_CHAT_COMPLETIONS"],'
        '"artifact":{"sha":"abc","parentPath":null,"childrenPaths":null}},"nodeHint":{"zone":"a"}}'
    )
    entry = ModelEntry.from_json(text)
    assert dict(entry.extra) == {"nodeHint": {"zone": "a"}}
    assert entry.config is not None
    assert entry.config.extra["apiCapabilities"] == ["OPENAI_V1_CHAT_COMPLETIONS"]
    entry.status = "Failed"
    assert entry.to_json() == (
        '{"name":"m","status":"Failed","config":{"modelType":"llama","apiCapabilities":["OPENAI_V1_CHAT_COMPLETIONS"],'
        '"artifact":{"childrenPaths":null,"parentPath":null,"sha":"abc"}},"nodeHint":{"zone":"a"}}'
    )


def test_status_rules() -> None:
    assert modelagent.MODEL_STATUSES == ("Ready", "Updating", "Failed", "Deleted")
    assert [s.value for s in ModelStatus] == list(modelagent.MODEL_STATUSES)
    with pytest.raises(ValueError, match="got 'ready'"):
        ModelEntry("m", "ready")
    entry = ModelEntry("m", "Ready")
    with pytest.raises(ValueError):
        entry.status = "Pending"
    # A status written by someone else is read and kept, not rejected.
    assert ModelEntry.from_json('{"name":"m","status":"Pending"}').status == "Pending"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"name":"m",', "invalid JSON"),
        ("[]", "expected a JSON object, got array"),
        ('{"status":"Ready"}', "missing field 'name'"),
        ('{"name":"m","status":"Ready","config":{"maxTokens":2147483648}}', "field 'config.maxTokens'"),
        ('{"name":"m","status":"Ready","config":{"maxTokens":1.5}}', "non-integer"),
        ('{"name":"m","status":"Ready","config":{"modelCapabilities":[1]}}', "config.modelCapabilities[0]"),
        ('{"name":"m","status":"Ready","progress":{"totalBytes":-1}}', "progress.totalBytes"),
    ],
)
def test_parse_errors_name_the_key_and_field(text: str, fragment: str) -> None:
    with pytest.raises(ModelEntryError) as info:
        ModelEntry.from_json(text, key="team.basemodel.m")
    assert "ConfigMap entry 'team.basemodel.m'" in str(info.value)
    assert fragment in str(info.value)


def test_bad_python_values() -> None:
    with pytest.raises(ValueError, match="NaN|nan"):
        ModelConfig(decoded_model_configuration={"x": float("nan")})
    with pytest.raises(TypeError, match="keys must be str"):
        ModelConfig(decoded_model_configuration={1: "x"})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        ModelConfig(decoded_model_configuration={"x": object()})
    with pytest.raises(ValueError, match="64 bits"):
        ModelConfig(decoded_model_configuration={"x": 2**70})
    with pytest.raises(TypeError):
        ModelEntry.from_json(123)  # type: ignore[arg-type]
    with pytest.raises(ModelEntryError, match="missing field 'status'"):
        ModelEntry.from_dict({"name": "m"})
    with pytest.raises(TypeError):
        ModelConfig(max_tokens=2**31)


def test_repr_is_readable() -> None:
    entry = ModelEntry("m", "Ready", ModelConfig(model_type="llama", max_tokens=4096), ModelProgress(phase="Downloading"))
    text = repr(entry)
    assert text.startswith("ModelEntry(name='m', status='Ready', config=ModelConfig(model_type='llama', max_tokens=4096)")
    assert "progress=ModelProgress(phase='Downloading'" in text


# ---- Go encoding/json compatibility, checked against independent Python emulations ----


def go_float(x: float) -> str:
    """encoding/json's float64 formatting, from Python's shortest repr digits."""
    if x == 0:
        return "-0" if math.copysign(1.0, x) < 0 else "0"
    sign, digits, exponent = decimal.Decimal(repr(x)).normalize().as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits))
    point = len(text) + exponent  # digits before the decimal point
    prefix = "-" if sign else ""
    if abs(x) < 1e-6 or abs(x) >= 1e21:
        e = point - 1
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        exp_text = f"{abs(e):02d}" if e >= 0 or abs(e) >= 10 else str(abs(e))
        return f"{prefix}{mantissa}e{'-' if e < 0 else '+'}{exp_text}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{text}"
    if point >= len(text):
        return prefix + text + "0" * (point - len(text))
    return f"{prefix}{text[:point]}.{text[point:]}"


def go_string(s: str) -> str:
    """encoding/json's string escaping for valid UTF-8 input."""
    out = json.dumps(s, ensure_ascii=False)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        out = out.replace(char, escape)
    return out


def decoded_json(value: object) -> str:
    text = ModelEntry("m", "Ready", ModelConfig(decoded_model_configuration={"v": value})).to_json()
    prefix = '{"name":"m","status":"Ready","config":{"decodedModelConfiguration":{"v":'
    assert text.startswith(prefix) and text.endswith("}}}")
    return text[len(prefix) : -3]


def test_floats_match_go_formatting() -> None:
    rng = random.Random(7)
    values = [0.1 + 0.2, 1e21, 1e20, 1e-6, 1e-7, 5e-324, 1.7976931348623157e308, -0.0, 123456789.125]
    values += [math.nextafter(1e21, 0), math.nextafter(1e-6, 0), math.nextafter(1e-6, 1)]
    while len(values) < 3000:
        candidate = struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0]
        if math.isfinite(candidate):
            values.append(candidate)
        values.append(float(f"{rng.randint(1, 10**9)}e{rng.randint(-25, 25)}"))
    for value in values:
        assert decoded_json(value) == go_float(value), repr(value)


def test_strings_match_go_escaping() -> None:
    rng = random.Random(11)
    alphabet = ['"', "\\", "/", "<", ">", "&", "\u2028", "\u2029", "\u00e9", "\u6a21", "\U0001f999", "a", " "]
    alphabet += [chr(c) for c in range(0x20)] + ["\x7f"]
    for _ in range(2000):
        s = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 10)))
        assert decoded_json(s) == go_string(s), repr(s)
        assert ModelEntry.from_json(ModelEntry(s, "Ready").to_json()).name == s


def test_map_keys_sorted_bytewise_at_every_depth() -> None:
    value = {"b": {"z": 1, "Z": 2, "\u00e9": 3, "_": 4}, "B": [{"y": None, "x": True}], "a": "s"}
    assert decoded_json(value) == '{"B":[{"x":true,"y":null}],"a":"s","b":{"Z":2,"_":4,"z":1,"\u00e9":3}}'
