"""Many distillation episodes at once, as one Stable-Baselines3 ``VecEnv``.

The environments are split into groups; each group lives in one *worker* and is stepped there
in turn, its environments sharing one teacher, test split and probe set. Three transports carry
a worker's calls, all behind the same :class:`GroupedVecEnv`:

- ``local``: the group runs in this process (no parallelism; the reference the others must equal);
- ``process``: one ``multiprocessing`` process per worker (spawned, so CUDA and threads are safe);
- ``ray``: one Ray actor per worker, locally or on a cluster (``ray_address``).

Every environment is seeded with ``seed + index`` at the first reset (SB3's convention) and
draws everything else from its own generators, so episode ``k`` of environment ``i`` gives the
same result on every transport and for every split into workers.

Why workers hold whole environments rather than one stacked batch of students: on a CPU the
forward and backward passes of these small models already cost the same per sample at batch 128
as at batch 2,048 (docs/notebook/2026-12-02.md, "Vector environments"), so stacking episodes into one batch
saves nothing there; parallel workers use the cores that one process leaves idle.

A worker that dies (killed, out of memory, its Ray node lost) ends the run with one line,
:class:`~ssdkd_env.errors.WorkerDied`, naming the worker; the other workers are stopped at once.
Restarting it instead (Ray's ``max_restarts``) is not done: a restarted worker would have lost its
environments mid-episode (student, generator, memory, random state), so the run would silently
stop being the one its seed describes. The run's last checkpoint (written at episode ends) is
kept, and ``--resume`` continues from it exactly.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from copy import deepcopy
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn

from ssdkd_env.env.config import EnvConfig
from ssdkd_env.env.distillation_env import DistillationEnv, in_action_form, make_env
from ssdkd_env.errors import UserError, WorkerDied

TRANSPORTS = ("local", "process", "ray")
RESUME_HINT = "the run's last checkpoint is kept, and the same command with --resume continues from it"


def how_it_ended(exitcode: int | None) -> str:
    """A worker process's end in words, from its ``Process.exitcode``: "was killed by SIGKILL"."""
    if exitcode is None:
        return "stopped answering"
    if exitcode < 0:
        try:
            return f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with code {exitcode}"


class EnvGroup:
    """``count`` environments of one configuration in one process, sharing teacher, test split and probe."""

    def __init__(self, config: dict[str, Any], count: int, threads: int | None = None) -> None:
        if threads is not None:
            torch.set_num_threads(threads)
        first = make_env(EnvConfig.from_dict(config))
        base = first.unwrapped
        assert isinstance(base, DistillationEnv)
        self.envs: list[gym.Env] = [first, *(in_action_form(base.sibling()) for _ in range(count - 1))]

    def spaces(self) -> tuple[gym.Space, gym.Space]:
        return self.envs[0].observation_space, self.envs[0].action_space

    def reset(self, seeds: Sequence[int | None], options: Sequence[dict | None]) -> list[tuple[np.ndarray, dict]]:
        return [
            env.reset(seed=seed, **({"options": opt} if opt else {}))
            for env, seed, opt in zip(self.envs, seeds, options, strict=True)
        ]

    def step(self, actions: Sequence[Any]) -> list[tuple[np.ndarray, float, bool, dict, dict | None]]:
        """One step of every environment; a finished episode is reset at once (SB3's auto-reset),
        its last observation in ``info["terminal_observation"]``."""
        results = []
        for env, action in zip(self.envs, actions, strict=True):
            obs, reward, terminated, truncated, info = env.step(action)
            done = bool(terminated or truncated)
            info["TimeLimit.truncated"] = bool(truncated and not terminated)
            reset_info = None
            if done:
                info["terminal_observation"] = obs
                obs, reset_info = env.reset()
            results.append((obs, float(reward), done, info, reset_info))
        return results

    def get_attr(self, name: str, local: Sequence[int]) -> list[Any]:
        return [getattr(self.envs[i], name) for i in local]

    def set_attr(self, name: str, value: Any, local: Sequence[int]) -> None:
        for i in local:
            setattr(self.envs[i], name, value)

    def call(self, name: str, args: tuple, kwargs: dict, local: Sequence[int]) -> list[Any]:
        return [getattr(self.envs[i], name)(*args, **kwargs) for i in local]

    def is_wrapped(self, wrapper: type[gym.Wrapper], local: Sequence[int]) -> list[bool]:
        from stable_baselines3.common.env_util import is_wrapped

        return [is_wrapped(self.envs[i], wrapper) for i in local]

    def close(self) -> None:
        for env in self.envs:
            env.close()

    def pid(self) -> int:
        """The process the group lives in (named when its worker dies)."""
        return os.getpid()


class Worker(ABC):
    """Carries calls to one :class:`EnvGroup`: ``submit`` a method call, then collect its ``result``.

    ``label`` names the worker in errors ("environment worker 1 of 2"); a worker that dies raises
    :class:`WorkerDied` from ``submit`` or ``result``."""

    label: str

    @abstractmethod
    def submit(self, method: str, *args: Any) -> None: ...

    @abstractmethod
    def result(self) -> Any: ...

    def call(self, method: str, *args: Any) -> Any:
        self.submit(method, *args)
        return self.result()

    @abstractmethod
    def shutdown(self) -> None:
        """Release the worker (after its group was closed)."""

    def abort(self) -> None:
        """Stop the worker at once, whatever it is doing (another worker died)."""
        self.shutdown()


class LocalWorker(Worker):
    def __init__(self, config: dict[str, Any], count: int, threads: int | None, label: str) -> None:
        self.label = label
        self.group = EnvGroup(config, count, threads)
        self._pending: Any = None

    def submit(self, method: str, *args: Any) -> None:
        self._pending = getattr(self.group, method)(*args)

    def result(self) -> Any:
        result, self._pending = self._pending, None
        return result

    def shutdown(self) -> None:
        """Nothing to release: the group lives in this process."""


def _serve(conn: Any, config: dict[str, Any], count: int, threads: int | None) -> None:
    """A process worker's loop: build the group, then answer (method, args) messages until ``None``.

    Ctrl-C is the parent's to handle (it stops the workers); a parent that is gone (the pipe is
    closed) ends the loop quietly, so a killed parent leaves no worker behind."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        try:
            group = EnvGroup(config, count, threads)
            conn.send(("ok", None))
        except Exception as exc:  # reported to the parent, which raises it there
            conn.send(_failure(exc))
            return
        while (message := conn.recv()) is not None:
            method, args = message
            try:
                conn.send(("ok", getattr(group, method)(*args)))
            except Exception as exc:
                conn.send(_failure(exc))
    except (EOFError, OSError):
        pass
    finally:
        conn.close()


def _failure(exc: Exception) -> tuple[str, str]:
    """A worker's exception as a message: a user error stays one (a one-line error in the parent)."""
    return ("user", str(exc)) if isinstance(exc, UserError) else ("error", f"{type(exc).__name__}: {exc}")


class ProcessWorker(Worker):
    def __init__(self, config: dict[str, Any], count: int, threads: int | None, label: str) -> None:
        self.label = label
        context = mp.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, config, count, threads), daemon=True)
        self.process.start()
        child.close()
        self.result()  # the group was built (or its error is raised here)

    def submit(self, method: str, *args: Any) -> None:
        try:
            self.conn.send((method, args))
        except OSError:  # the other end is gone
            raise self._died() from None

    def result(self) -> Any:
        try:
            status, value = self.conn.recv()
        except (EOFError, OSError):
            raise self._died() from None
        if status == "user":
            raise UserError(value)
        if status == "error":
            raise RuntimeError(f"environment worker: {value}")
        return value

    def shutdown(self) -> None:
        try:
            self.conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        self.process.join(timeout=30)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join()
        self.conn.close()

    def abort(self) -> None:
        """SIGTERM at once: its episodes are lost anyway, and a step under way need not finish."""
        self.process.terminate()
        self.process.join()
        self.conn.close()

    def _died(self) -> WorkerDied:
        self.process.join(timeout=10)  # a killed process is reaped at once
        how = how_it_ended(self.process.exitcode)
        return WorkerDied(f"{self.label} (pid {self.process.pid}) {how}; {RESUME_HINT}")


class RayWorker(Worker):
    def __init__(self, config: dict[str, Any], count: int, threads: int | None, label: str) -> None:
        import ray

        self.label = label
        actor_class = ray.remote(num_cpus=threads or 1)(EnvGroup)
        actor: Any = actor_class.remote(config, count, threads)
        self.actor = actor
        self._pid = actor.pid.remote()  # read when the actor dies
        self._pending: Any = None

    def submit(self, method: str, *args: Any) -> None:
        self._pending = getattr(self.actor, method).remote(*args)

    def result(self) -> Any:
        import ray

        ref, self._pending = self._pending, None
        try:
            return ray.get(ref)
        except ray.exceptions.RayActorError:
            raise self._died() from None

    def shutdown(self) -> None:
        import ray

        ray.kill(self.actor)

    def _died(self) -> WorkerDied:
        import ray

        try:
            where = f"Ray actor, pid {ray.get(self._pid, timeout=10)}"
        except (ray.exceptions.RayError, TimeoutError):  # it died before it could say
            where = "Ray actor"
        return WorkerDied(f"{self.label} ({where}) died; {RESUME_HINT}")


WORKERS: dict[str, Callable[[dict[str, Any], int, int | None, str], Worker]] = {
    "local": LocalWorker,
    "process": ProcessWorker,
    "ray": RayWorker,
}


def connect_ray(address: str | None, num_cpus: int | None = None) -> None:
    """Start a local Ray instance (``address`` None) or join the cluster at ``address`` ("auto" or
    "ray://HOST:10001"); a one-line error when Ray is missing or the cluster cannot be reached."""
    try:
        import ray
    except ImportError:
        raise UserError("the 'ray' transport needs Ray: pip install 'ssdkd_env[ray]'") from None
    if ray.is_initialized():
        return
    try:
        if address is None:
            # Ray starts its workers at niceness 15 by default; here they are the job, not background work
            os.environ.setdefault("RAY_worker_niceness", "0")
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise UserError(f"cannot reach the Ray cluster at '{address}': {exc}") from None


def split(n_envs: int, n_workers: int) -> list[int]:
    """Environments per worker: as even as possible, the larger groups first."""
    base, extra = divmod(n_envs, n_workers)
    return [base + (1 if w < extra else 0) for w in range(n_workers)]


class GroupedVecEnv(VecEnv):
    """``n_envs`` environments of ``config`` in ``n_workers`` workers of one ``transport``.

    Each worker runs ``threads`` torch threads (default: torch's own choice for ``local``, 1 for the
    others, so that workers do not compete for cores). Steps are sent to every worker before any
    result is collected, so the workers run at the same time.
    """

    def __init__(
        self,
        config: EnvConfig,
        n_envs: int,
        *,
        transport: str = "local",
        n_workers: int | None = None,
        threads: int | None = None,
        ray_address: str | None = None,
    ) -> None:
        if n_envs < 1:
            raise UserError(f"n_envs must be at least 1, got {n_envs}")
        if transport not in TRANSPORTS:
            raise UserError(f"unknown transport '{transport}'; valid: {', '.join(TRANSPORTS)}")
        n_workers = 1 if transport == "local" else (n_workers or min(n_envs, mp.cpu_count()))
        if not 1 <= n_workers <= n_envs:
            raise UserError(f"n_workers must be between 1 and n_envs ({n_envs}), got {n_workers}")
        if transport != "local" and threads is None:
            threads = 1
        config_dict = config.to_dict()
        if transport == "ray":
            connect_ray(ray_address, num_cpus=None if ray_address else max(n_workers * (threads or 1), 1))
        worker_class = WORKERS[transport]
        self.transport = transport
        self.sizes = split(n_envs, n_workers)
        self.workers: list[Worker] = []
        try:
            # every worker builds its group at once (Ray: actors start concurrently)
            for i, size in enumerate(self.sizes):
                self.workers.append(worker_class(config_dict, size, threads, f"environment worker {i} of {n_workers}"))
            observation_space, action_space = self.workers[0].call("spaces")
        except WorkerDied:
            self._abort()
            raise
        except Exception:
            self._shutdown()
            raise
        self._starts = np.cumsum([0, *self.sizes])[:-1].tolist()
        super().__init__(n_envs, observation_space, action_space)
        self.closed = False

    # ------------------------------------------------------------------ routing
    def _route(self, indices: VecEnvIndices) -> dict[int, list[int]]:
        """Worker -> its local indices, for the global ``indices``."""
        routes: dict[int, list[int]] = {}
        for i in self._get_indices(indices):
            worker = int(np.searchsorted(self._starts, i, side="right") - 1)
            routes.setdefault(worker, []).append(i - self._starts[worker])
        return routes

    @contextmanager
    def _fatal_deaths(self) -> Iterator[None]:
        """A worker that dies ends the vector: the other workers are stopped, then the error is raised."""
        try:
            yield
        except WorkerDied:
            self.closed = True
            self._abort()
            raise

    # ------------------------------------------------------------------ VecEnv API
    def reset(self) -> VecEnvObs:
        seeds, options = list(self._seeds), list(self._options)
        with self._fatal_deaths():
            for worker, start, size in zip(self.workers, self._starts, self.sizes, strict=True):
                worker.submit("reset", seeds[start : start + size], options[start : start + size])
            results = [item for worker in self.workers for item in worker.result()]
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [info for _, info in results]
        return np.stack([obs for obs, _ in results])

    def step_async(self, actions: np.ndarray) -> None:
        with self._fatal_deaths():
            for worker, start, size in zip(self.workers, self._starts, self.sizes, strict=True):
                worker.submit("step", list(actions[start : start + size]))

    def step_wait(self) -> VecEnvStepReturn:
        with self._fatal_deaths():
            results = [item for worker in self.workers for item in worker.result()]
        obs = np.stack([r[0] for r in results])
        rewards = np.array([r[1] for r in results], dtype=np.float32)
        dones = np.array([r[2] for r in results], dtype=bool)
        infos = [r[3] for r in results]
        for i, r in enumerate(results):
            if r[4] is not None:
                self.reset_infos[i] = r[4]
        return obs, rewards, dones, deepcopy(infos)

    def close(self) -> None:
        if getattr(self, "closed", True):
            return
        self.closed = True
        for worker in self.workers:
            try:
                worker.call("close")
            except Exception:  # a worker that died already has nothing to close
                pass
        self._shutdown()

    def _shutdown(self) -> None:
        for worker in self.workers:
            worker.shutdown()

    def _abort(self) -> None:
        for worker in self.workers:
            worker.abort()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return self._gather("get_attr", (attr_name,), indices)

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        with self._fatal_deaths():
            for w, local in self._route(indices).items():
                self.workers[w].call("set_attr", attr_name, value, local)

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        return self._gather("call", (method_name, method_args, method_kwargs), indices)

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return self._gather("is_wrapped", (wrapper_class,), indices)

    def _gather(self, method: str, args: tuple, indices: VecEnvIndices) -> list[Any]:
        """``method(*args, local)`` on every worker that holds some of ``indices``, results in order."""
        out: list[Any] = []
        with self._fatal_deaths():
            for w, local in self._route(indices).items():
                out.extend(self.workers[w].call(method, *args, local))
        return out


def make_vec_env(
    config: EnvConfig, n_envs: int, transport: str = "local", *, seed: int | None = None, **options: Any
) -> GroupedVecEnv:
    """A :class:`GroupedVecEnv` (``options``: its ``n_workers``, ``threads``, ``ray_address``); with
    ``seed``, environment ``i`` starts from ``seed + i``."""
    vec = GroupedVecEnv(config, n_envs, transport=transport, **options)
    if seed is not None:
        vec.seed(seed)
    return vec
