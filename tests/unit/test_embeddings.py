import io
import json
import math

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError
from botocore.response import StreamingBody
from botocore.stub import Stubber
from urllib3 import HTTPResponse

from crmjobs.adapters.embeddings import bedrock as bedrock_module
from crmjobs.adapters.embeddings import get_embedder
from crmjobs.adapters.embeddings.bedrock import BedrockTitanEmbedder
from crmjobs.adapters.embeddings.minilm import LocalMiniLMEmbedder

TITAN = "amazon.titan-embed-text-v2:0"


def cosine(left: list[float], right: list[float]) -> float:
    return sum(a * b for a, b in zip(left, right, strict=True))


def norm(vector: list[float]) -> float:
    return math.sqrt(sum(value * value for value in vector))


# ---------------------------------------------------------------------------------------------
# Local all-MiniLM-L6-v2
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm() -> LocalMiniLMEmbedder:
    return LocalMiniLMEmbedder(batch_size=4)


def test_minilm_reproduces_the_sbert_quickstart_similarities(minilm):
    # https://sbert.net/docs/sentence_transformer/usage/usage.html (all-MiniLM-L6-v2):
    # tensor([[1.0000, 0.6660, 0.1046], [0.6660, 1.0000, 0.1411], [0.1046, 0.1411, 1.0000]])
    weather, sunny, stadium = minilm.embed(
        ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
    )
    assert cosine(weather, sunny) == pytest.approx(0.6660, abs=1e-3)
    assert cosine(weather, stadium) == pytest.approx(0.1046, abs=1e-3)
    assert cosine(sunny, stadium) == pytest.approx(0.1411, abs=1e-3)


def test_minilm_reproduces_the_sbert_semantic_similarity_table(minilm):
    # https://sbert.net/docs/sentence_transformer/usage/semantic_textual_similarity.html
    published = {
        ("The new movie is awesome", "The dog plays in the garden"): 0.0543,
        ("The new movie is awesome", "The new movie is so great"): 0.8939,
        ("The new movie is awesome", "A woman watches TV"): -0.0502,
        ("The cat sits outside", "The dog plays in the garden"): 0.2838,
        ("The cat sits outside", "The new movie is so great"): -0.0029,
        ("The cat sits outside", "A woman watches TV"): 0.1310,
        ("A man is playing guitar", "The dog plays in the garden"): 0.2277,
        ("A man is playing guitar", "The new movie is so great"): -0.0136,
        ("A man is playing guitar", "A woman watches TV"): -0.0327,
    }
    texts = sorted({text for pair in published for text in pair})
    vectors = dict(zip(texts, minilm.embed(texts), strict=True))
    for (left, right), expected in published.items():
        assert cosine(vectors[left], vectors[right]) == pytest.approx(expected, abs=1e-3)


def test_minilm_ranks_a_paraphrase_above_an_unrelated_sentence(minilm):
    question, paraphrase, unrelated = minilm.embed(
        [
            "How do I reset my password?",
            "Steps to change your account password",
            "Quarterly revenue grew 12%",
        ]
    )
    assert cosine(question, paraphrase) > 0.5
    assert cosine(question, paraphrase) > cosine(question, unrelated) + 0.4


def test_minilm_vectors_are_unit_length_384_dimensional(minilm):
    vectors = minilm.embed(["Short.", "", "Ünïcödé text with emoji 🎉 and 中文."])
    assert [len(vector) for vector in vectors] == [384, 384, 384]
    assert all(norm(vector) == pytest.approx(1.0, abs=1e-5) for vector in vectors)
    assert minilm.model_id == "sentence-transformers/all-MiniLM-L6-v2"
    assert minilm.dimension == 384


def test_minilm_padding_and_batching_do_not_change_a_vector(minilm):
    short = "Call the customer back tomorrow."
    longer = [
        f"Meeting notes number {n}: " + "the renewal is on track. " * (n + 1) for n in range(9)
    ]
    alone = minilm.embed([short])[0]
    mixed = minilm.embed([*longer[:5], short, *longer[5:]])  # three padded batches of 4
    assert mixed[5] == pytest.approx(alone, abs=1e-5)
    assert mixed[0] == pytest.approx(minilm.embed([longer[0]])[0], abs=1e-5)


def test_minilm_truncates_input_at_256_word_pieces(minilm):
    head = " ".join(f"topic{n}" for n in range(200))  # far more than 256 word pieces
    with_tail, other_tail, head_only_part = minilm.embed(
        [head + " budget approved", head + " contract cancelled", " ".join(head.split()[:20])]
    )
    assert with_tail == pytest.approx(other_tail, abs=1e-6)
    assert cosine(with_tail, head_only_part) < 0.99


def test_minilm_loads_its_files_lazily(tmp_path):
    embedder = LocalMiniLMEmbedder(model_dir=tmp_path)  # nothing is read yet
    assert embedder.embed([]) == []
    with pytest.raises(FileNotFoundError):
        embedder.embed(["now it needs the model"])


# ---------------------------------------------------------------------------------------------
# Bedrock Titan Text Embeddings V2 (botocore Stubber on a real bedrock-runtime client)
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def aws_credentials(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture
def bedrock(aws_credentials):
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def titan_response(vector: list[float], token_count: int = 5) -> dict:
    payload = json.dumps({"embedding": vector, "inputTextTokenCount": token_count}).encode()
    return {
        "body": StreamingBody(io.BytesIO(payload), len(payload)),
        "contentType": "application/json",
    }


def titan_request(text: str, dimension: int = 512) -> dict:
    return {
        "modelId": TITAN,
        "body": json.dumps({"inputText": text, "dimensions": dimension, "normalize": True}),
        "contentType": "application/json",
        "accept": "application/json",
    }


def unit_vector(dimension: int, hot: int) -> list[float]:
    return [1.0 if index == hot else 0.0 for index in range(dimension)]


def make_titan(client, dimension: int = 512, **options) -> tuple[BedrockTitanEmbedder, list[float]]:
    delays: list[float] = []
    embedder = BedrockTitanEmbedder(
        dimension=dimension, client=client, sleep=delays.append, jitter=lambda: 1.0, **options
    )
    return embedder, delays


def test_titan_sends_the_documented_body_once_per_text(bedrock):
    client, stubber = bedrock
    for text, hot in (("first", 0), ("second", 1)):
        stubber.add_response(
            "invoke_model",
            titan_response(unit_vector(512, hot)),
            {
                "modelId": "amazon.titan-embed-text-v2:0",
                "body": f'{{"inputText": "{text}", "dimensions": 512, "normalize": true}}',
                "contentType": "application/json",
                "accept": "application/json",
            },
        )
    embedder, delays = make_titan(client)

    vectors = embedder.embed(["first", "second"])

    assert vectors == [unit_vector(512, 0), unit_vector(512, 1)]
    assert delays == []
    assert embedder.model_id == "amazon.titan-embed-text-v2:0@512"
    assert embedder.dimension == 512


def test_titan_body_carries_the_configured_dimension(bedrock):
    client, stubber = bedrock
    stubber.add_response(
        "invoke_model", titan_response(unit_vector(256, 3)), titan_request("hello", dimension=256)
    )
    embedder, _ = make_titan(client, dimension=256)
    assert embedder.embed(["hello"]) == [unit_vector(256, 3)]
    assert embedder.model_id == "amazon.titan-embed-text-v2:0@256"


def test_titan_retries_throttling_with_exponential_backoff(bedrock):
    client, stubber = bedrock
    stubber.add_client_error("invoke_model", "ThrottlingException", "Too many requests", 429)
    stubber.add_client_error("invoke_model", "ServiceUnavailableException", "Unavailable", 503)
    stubber.add_client_error("invoke_model", "ModelNotReadyException", "Not ready", 429)
    stubber.add_response("invoke_model", titan_response(unit_vector(512, 7)), titan_request("hi"))
    embedder, delays = make_titan(client, base_delay=0.25)

    assert embedder.embed(["hi"]) == [unit_vector(512, 7)]
    assert delays == [0.25, 0.5, 1.0]


def test_titan_backoff_is_jittered_and_capped(aws_credentials):
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    delays = []
    embedder = BedrockTitanEmbedder(
        client=client,
        max_attempts=6,
        base_delay=1.0,
        max_delay=3.0,
        sleep=delays.append,
        jitter=lambda: 0.5,
    )
    with Stubber(client) as stubber:
        for _ in range(6):
            stubber.add_client_error("invoke_model", "ThrottlingException", "Slow down", 429)
        with pytest.raises(ClientError, match="ThrottlingException"):
            embedder.embed(["x"])
    assert delays == [0.5, 1.0, 1.5, 1.5, 1.5]


def test_titan_retries_a_connection_error_and_sends_the_documented_body_on_the_wire(
    aws_credentials,
):
    client = boto3.client(
        "bedrock-runtime", region_name="us-east-1", config=Config(retries={"total_max_attempts": 1})
    )
    sent_requests = []

    def transport(request, **_):
        sent_requests.append(request)
        if len(sent_requests) == 1:
            raise EndpointConnectionError(endpoint_url=request.url)
        payload = json.dumps({"embedding": unit_vector(512, 4), "inputTextTokenCount": 3})
        raw = HTTPResponse(body=io.BytesIO(payload.encode()), status=200, preload_content=False)
        return AWSResponse(request.url, 200, {"Content-Type": "application/json"}, raw)

    client.meta.events.register("before-send.bedrock-runtime.InvokeModel", transport)
    embedder, delays = make_titan(client)

    assert embedder.embed(["Renewal call"]) == [unit_vector(512, 4)]
    assert delays == [0.25]
    last = sent_requests[-1]
    assert last.url == (
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/amazon.titan-embed-text-v2%3A0/invoke"
    )
    assert json.loads(last.body) == {
        "inputText": "Renewal call",
        "dimensions": 512,
        "normalize": True,
    }
    assert last.headers["Content-Type"] == b"application/json"


def test_titan_gives_up_after_max_attempts(bedrock):
    client, stubber = bedrock
    for _ in range(3):
        stubber.add_client_error("invoke_model", "ThrottlingException", "Too many requests", 429)
    embedder, delays = make_titan(client, max_attempts=3)

    with pytest.raises(ClientError) as raised:
        embedder.embed(["hi"])
    assert raised.value.response["Error"]["Code"] == "ThrottlingException"
    assert len(delays) == 2


def test_titan_does_not_retry_a_permanent_error(bedrock):
    client, stubber = bedrock
    stubber.add_client_error("invoke_model", "AccessDeniedException", "No access to model", 403)
    embedder, delays = make_titan(client)

    with pytest.raises(ClientError, match="AccessDeniedException"):
        embedder.embed(["hi"])
    assert delays == []


def test_titan_truncates_to_50000_characters_then_halves_on_too_many_tokens(bedrock):
    client, stubber = bedrock
    text = "".join(chr(ord("a") + index % 26) for index in range(60_000))
    stubber.add_client_error(
        "invoke_model",
        "ValidationException",
        "400 Bad Request: Too many input tokens. Max input tokens: 8192, "
        "request input token count: 9875",
        400,
        expected_params=titan_request(text[:50_000]),
    )
    stubber.add_response(
        "invoke_model", titan_response(unit_vector(512, 2)), titan_request(text[:25_000])
    )
    embedder, delays = make_titan(client)

    assert embedder.embed([text]) == [unit_vector(512, 2)]
    assert delays == []


def test_titan_raises_other_validation_errors_without_halving(bedrock):
    client, stubber = bedrock
    stubber.add_client_error("invoke_model", "ValidationException", "Malformed input request", 400)
    embedder, _ = make_titan(client)

    with pytest.raises(ClientError, match="Malformed input request"):
        embedder.embed(["hi"])


def test_titan_rejects_an_embedding_of_the_wrong_size(bedrock):
    client, stubber = bedrock
    stubber.add_response("invoke_model", titan_response(unit_vector(1024, 0)), titan_request("hi"))
    embedder, _ = make_titan(client)

    with pytest.raises(ValueError, match="size 1024, expected 512"):
        embedder.embed(["hi"])


@pytest.mark.parametrize("dimension", [0, 128, 300, 2048])
def test_titan_accepts_only_documented_dimensions(dimension):
    with pytest.raises(ValueError):
        BedrockTitanEmbedder(dimension=dimension)


def test_titan_client_is_created_lazily_without_botocore_retries(aws_credentials):
    embedder = BedrockTitanEmbedder()
    client = embedder.client
    assert client.meta.service_model.service_name == "bedrock-runtime"
    assert client.meta.config.retries["total_max_attempts"] == 1
    assert embedder.client is client


# ---------------------------------------------------------------------------------------------
# Choosing the backend
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, "", "openai", "bedrok"])
def test_unknown_or_missing_backend_is_a_clear_error(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("EMBEDDINGS_BACKEND", raising=False)
    else:
        monkeypatch.setenv("EMBEDDINGS_BACKEND", value)
    with pytest.raises(ValueError, match="EMBEDDINGS_BACKEND must be 'bedrock' or 'local'"):
        get_embedder()


def test_local_backend_is_minilm_and_cached(monkeypatch):
    monkeypatch.setenv("EMBEDDINGS_BACKEND", "local")
    embedder = get_embedder()
    assert isinstance(embedder, LocalMiniLMEmbedder)
    assert get_embedder() is embedder


def test_bedrock_backend_reads_dimension_and_builds_no_client(monkeypatch):
    def no_client(*args, **kwargs):
        raise AssertionError("the Bedrock client must be created on first use only")

    monkeypatch.setattr(bedrock_module.aws, "create_client", no_client)
    monkeypatch.setenv("EMBEDDINGS_BACKEND", "bedrock")
    monkeypatch.delenv("EMBEDDINGS_DIMENSION", raising=False)
    default = get_embedder()
    assert isinstance(default, BedrockTitanEmbedder)
    assert default.model_id == "amazon.titan-embed-text-v2:0@512"
    assert get_embedder() is default

    monkeypatch.setenv("EMBEDDINGS_DIMENSION", "1024")
    assert get_embedder().model_id == "amazon.titan-embed-text-v2:0@1024"


@pytest.mark.parametrize("value", ["300", "abc", "512.0"])
def test_bedrock_backend_rejects_an_undocumented_dimension(monkeypatch, value):
    monkeypatch.setenv("EMBEDDINGS_BACKEND", "bedrock")
    monkeypatch.setenv("EMBEDDINGS_DIMENSION", value)
    with pytest.raises(ValueError, match="EMBEDDINGS_DIMENSION"):
        get_embedder()
