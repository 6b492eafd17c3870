"""Every setting, read once from the environment and ``.env``; the only place that reads configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """newsbot's configuration; environment variables are ``NEWSBOT_<FIELD>`` unless noted."""

    model_config = SettingsConfigDict(env_prefix="NEWSBOT_", env_file=".env", env_file_encoding="utf-8",
                                      extra="ignore")

    data_dir: Path = Field(Path(".newsbot"), description="Where the index lives.")
    collection: str = Field("newsbot", min_length=3, max_length=50, description="Chroma collection name.")
    model_cache_dir: Path | None = Field(None, description="Where the model's ONNX graph is cached "
                                                           "(default: <data_dir>/models).")
    embed_threads: int = Field(0, ge=0, description="ONNX Runtime threads; 0 = one per core.")
    embed_precision: Literal["int8", "fp32"] = Field("int8", description="Embedding model precision for new "
                                                     "indexes; an existing index keeps the one it was built with.")
    title_prefix: bool = Field(True, description="Embed title, outlet and date with each chunk.")
    top_k: int = Field(10, ge=1, le=100, description="Passages retrieved per question.")
    dense_weight: float = Field(0.4, ge=0.0, le=1.0, description="Weight of the dense score in fusion.")
    max_quotes: int = Field(5, ge=1, le=10, description="Most sentences quoted in an extractive answer.")
    abstain_threshold: float = Field(0.30, ge=0.0, le=1.0, description="Evidence below this abstains.")
    max_file_bytes: int = Field(256 * 1024 * 1024, ge=1, description="Largest input file accepted.")
    max_article_chars: int = Field(1_000_000, ge=100, description="Longest article body accepted.")
    max_question_chars: int = Field(2000, ge=10, description="Longest question accepted.")
    max_answer_chars: int = Field(4000, ge=200, description="Longest answer text shown; longer ones are cut at a "
                                  "sentence end, with a note.")
    log_level: str = Field("WARNING", description="DEBUG, INFO, WARNING or ERROR.")

    chroma_host: str = Field("", description="Chroma server host; empty = embedded Chroma in <data_dir>/chroma.")
    chroma_port: int = Field(8000, ge=1, le=65535, description="Chroma server port.")
    chroma_ssl: bool = Field(False, description="Talk HTTPS to the Chroma server.")
    chroma_auth_token: SecretStr | None = Field(None, description="Token sent to the Chroma server in a header.")
    chroma_auth_header: str = Field("Authorization", min_length=1, description="Header carrying the token; "
                                    "Authorization sends 'Bearer <token>', any other header the bare token.")
    index_refresh_seconds: float = Field(2.0, ge=0.0, description="How often a running process checks the "
                                         "store's version marker to pick up other processes' writes.")
    index_reconcile_seconds: float = Field(600.0, ge=0.0, description="How often a running process compares "
                                           "its host's lexical index with the store's live articles (repairs).")
    chroma_query_limit: int = Field(300, ge=10, le=100_000, description="Results per dense query and records "
                                    "per read by id (Chroma Cloud allows 300).")
    allow_private_urls: bool = Field(False, description="Allow fetching private, loopback, link-local URLs.")
    fetch_max_bytes: int = Field(5 * 1024 * 1024, ge=1024, description="Largest page or feed downloaded.")
    fetch_timeout: float = Field(20.0, gt=0, description="Seconds allowed for one download.")
    fetch_host_delay: float = Field(1.0, ge=0, description="Seconds between two requests to the same host.")
    discord_shards: int | None = Field(None, ge=0, description="Unset = one gateway connection; 0 = "
                                       "AutoShardedBot with Discord's recommended count; N = N shards.")

    llm_provider: Literal["none", "ollama", "openai", "openai-compatible"] = Field(
        "none", description="Who writes fluent answers: none (extractive only), ollama, openai, openai-compatible.")
    llm_model: str = Field("", description="Model name; default llama3.2 (ollama) or gpt-4o-mini (openai).")
    llm_base_url: str = Field("", description="Server URL; default http://127.0.0.1:11434 (ollama) or OpenAI's.")
    llm_api_key: SecretStr | None = Field(None, description="API key sent to the LLM server (never OPENAI_API_KEY).")
    llm_timeout_s: float = Field(30.0, gt=0, le=600, description="Wall-clock seconds allowed for the LLM's part "
                                 "of one answer; past it the extractive answer is shown.")
    llm_uncited: Literal["drop", "mark"] = Field("drop", description="A generated sentence with no valid "
                                                 "citation is dropped, or kept and marked as uncited.")

    discord_token: SecretStr | None = Field(None, validation_alias="DISCORD_TOKEN",
                                            description="Bot token (env DISCORD_TOKEN, no prefix).")
    discord_guild_id: int | None = Field(None, validation_alias=AliasChoices("NEWSBOT_DISCORD_GUILD_ID",
                                                                             "DISCORD_GUILD_ID"),
                                         description="Sync slash commands to this one server, instantly.")
    discord_cooldown_seconds: float = Field(5.0, ge=0, description="Seconds between one user's questions.")
    discord_max_in_flight: int = Field(2, ge=1, le=64, description="Questions answered at the same time.")
    discord_max_queue: int = Field(100, ge=0, description="Questions waiting beyond those; more are turned away.")
    discord_allowed_guild_ids: Annotated[list[int], NoDecode] = Field(
        default_factory=list, description="Comma-separated server IDs the bot answers in; empty = all.")
    discord_allowed_channel_ids: Annotated[list[int], NoDecode] = Field(
        default_factory=list, description="Comma-separated channel IDs the bot answers in; empty = all.")
    discord_allow_dms: bool = Field(True, description="Answer direct messages.")
    discord_threads: bool = Field(True, description="Answer mentions in a new thread named after the question.")
    discord_message_content: bool = Field(True, description="Request the privileged message-content intent.")
    discord_history_turns: int = Field(6, ge=1, le=50, description="Earlier turns of a thread or DM kept to "
                                       "resolve follow-ups.")
    discord_conversations: int = Field(1000, ge=1, description="Threads and DMs remembered (least recently used "
                                       "forgotten first), in <data_dir>/discord.sqlite3.")
    discord_conversation_days: float = Field(30.0, gt=0, description="A conversation untouched for this many "
                                             "days is forgotten.")
    discord_edit_seconds: float = Field(1.0, ge=0.2, description="With an LLM: seconds between two edits of a "
                                        "streamed draft.")
    discord_editor_role_ids: Annotated[list[int], NoDecode] = Field(
        default_factory=list, description="Comma-separated role IDs whose members may /add links and /follow "
        "topics; empty = nobody.")
    discord_add_cooldown_seconds: float = Field(30.0, ge=0, description="Seconds between one member's added "
                                                "links (/add or a posted link).")
    discord_link_channel_ids: Annotated[list[int], NoDecode] = Field(
        default_factory=list, description="Comma-separated channel IDs where links posted by editors are added "
        "as sources; empty = none.")
    discord_follow_poll_seconds: float = Field(30.0, ge=1, description="How often the bot checks the index for "
                                               "new articles to post to followed topics.")
    discord_digest_lines: int = Field(5, ge=1, le=10, description="Most articles in one digest message.")
    discord_follow_min_similarity: float = Field(0.30, ge=0.0, le=1.0, description="Cosine similarity between "
                                                 "a topic and an article's passage needed to post it.")

    @field_validator("discord_allowed_guild_ids", "discord_allowed_channel_ids", "discord_editor_role_ids",
                     "discord_link_channel_ids", mode="before")
    @classmethod
    def _id_list(cls, value: object) -> object:
        if isinstance(value, str):
            items = value.replace(",", " ").split()
            if not all(v.isdigit() for v in items):
                raise ValueError(f"expected comma-separated numeric IDs, got {value!r}")
            return [int(v) for v in items]
        return value

    @property
    def cache_dir(self) -> Path:
        return self.model_cache_dir or (self.data_dir / "models")

    def chroma_headers(self) -> dict[str, str]:
        """HTTP headers for the Chroma server (the auth token, when one is set)."""
        if self.chroma_auth_token is None or not self.chroma_auth_token.get_secret_value():
            return {}
        token = self.chroma_auth_token.get_secret_value()
        if self.chroma_auth_header.lower() == "authorization" and not token.lower().startswith("bearer "):
            token = f"Bearer {token}"
        return {self.chroma_auth_header: token}


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment and ./.env, with command-line overrides applied."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
