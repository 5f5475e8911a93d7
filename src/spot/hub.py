"""Hub ids checked once, quickly, before a library's download path retries them for half a minute.

`datasets.load_dataset` and `from_pretrained` retry an unreachable hub with backoff and print a warning per
try before failing. One `repo_info` call answers in a fraction of a second: the id exists, or it does not,
or the hub cannot be reached (then a copy in the local cache is still fine). Local paths and HF_HUB_OFFLINE=1
skip the check: those runs never touch the network.
"""

from __future__ import annotations

from spot.errors import DataError, UserError, first_line


def check_local_model(path: str, key: str = "model.path") -> None:
    """A path that can only be local (./x, /x, ~/x, a/b/c, or an existing first component) and does not exist:
    one line now, instead of a hub look-up of a name no hub has. A bare org/name passes (it may be a hub id)."""
    from pathlib import Path

    p = Path(path).expanduser()
    if p.exists():
        return
    local_looking = path.startswith((".", "/", "~")) or path.count("/") > 1 or Path(path.split("/")[0]).is_dir()
    if local_looking:
        raise UserError(f"{key}={path}: no such directory")


class HubUnreachable(UserError):
    """The hub cannot be reached and no copy is cached: a caller with another source (a suite's local file) names
    it; everyone else reports this line."""


def gated(key: str, repo_id: str, repo_type: str = "model") -> DataError:
    """The line for a gated repository: where to accept its terms, and how to log in here."""
    page = f"https://huggingface.co/{'datasets/' if repo_type == 'dataset' else ''}{repo_id}"
    return DataError(f"{key}={repo_id} is gated: accept its terms at {page} (logged in), then log in here with "
                     "`hf auth login` (or set HF_TOKEN)")


def check_reachable(repo_id: str, key: str, repo_type: str = "model", probe_file: str = "config.json") -> None:
    """UserError (one line naming `key`) when `repo_id` cannot be had: unknown, gated, or unreachable and not
    cached (HubUnreachable; `probe_file` is the file whose cached copy counts as "cached")."""
    import huggingface_hub as hub
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    if hub.constants.HF_HUB_OFFLINE:
        return
    try:
        hub.HfApi().repo_info(repo_id, repo_type=repo_type, timeout=10)
    except GatedRepoError:
        raise gated(key, repo_id, repo_type) from None
    except RepositoryNotFoundError:
        raise UserError(f"{key}={repo_id}: no such {repo_type} on the Hugging Face hub (or it is private: "
                        "hf auth login), and no local path of that name exists") from None
    except HfHubHTTPError as e:
        raise UserError(f"{key}={repo_id}: the hub answered {first_line(e, 200)}") from None
    except Exception as e:  # no network: fine if a copy is cached
        if isinstance(hub.try_to_load_from_cache(repo_id, probe_file, repo_type=repo_type), str):
            return
        raise HubUnreachable(f"{key}={repo_id}: no local path of that name, and as a hub id: huggingface.co cannot "
                             f"be reached ({first_line(e, 200)}) and no copy is cached") from None
