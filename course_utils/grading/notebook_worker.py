"""Runs one submitted notebook for the grader, inside the submission's sandbox.

    python notebook_worker.py CELL_TIMEOUT MEMORY_BYTES OUTPUT_BYTES < submission.ipynb

Run by path, not imported: it imports nothing from the course (importing course_utils would import
torch, seconds per submission), and everything it prints is read by the grader as untrusted data.

It caps its own memory (address space, inherited by the kernel and everything the kernel starts),
the size of any file, and core dumps; sends its own stdout and stderr to ``worker.log`` so that
nothing the kernel writes reaches the grader's stream; runs every cell with nbclient (a cell that
raises does not stop the rest, a cell past CELL_TIMEOUT is interrupted); keeps no cell output
(it counts the bytes and says once when they pass OUTPUT_BYTES); and after each cell sends the
grader, as JSON lines on the original stdout, what happened and every check record the kernel has
written to ``records/`` since (base64 of the file: the grader loads it as data only).

Events: {"event": "kernel"}, {"event": "start", "index"}, {"event": "cell", "index", "status",
"ename", "evalue"}, {"event": "record", "data"}, {"event": "note", "text"}, then {"event": "done"}
or {"event": "failed", "error"}.
"""

import base64
import json
import os
import resource
import stat
import sys

sys.modules["rfc3987_syntax"] = None  # optional for jsonschema, which nbformat imports; it takes seconds to import

RECORD_LIMIT = 64 * 2**20


def _open_stream():
    """The grader's stream (a duplicate of stdout, not inherited by children); stdout/stderr go to a log."""
    stream = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    log = os.open("worker.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    return stream


def _limit(memory_bytes: int, file_bytes: int) -> None:
    for which, value in ((resource.RLIMIT_AS, memory_bytes), (resource.RLIMIT_FSIZE, file_bytes),
                         (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(which, (value, value))


def main() -> None:
    cell_timeout, memory_bytes, output_bytes = (int(a) for a in sys.argv[1:4])
    stream = _open_stream()

    def send(**event) -> None:
        stream.write(json.dumps(event) + "\n")
        stream.flush()

    source = sys.stdin.buffer.read()
    records = os.path.abspath("records")
    os.makedirs(records, exist_ok=True)
    os.environ["COURSE_GRADING_RECORDS"] = records
    _limit(memory_bytes, max(output_bytes, RECORD_LIMIT + 2**20))

    import nbformat
    from nbclient import NotebookClient

    class Client(NotebookClient):
        printed = 0
        capped = False

        def output(self, outs, msg, display_id, cell_index):
            """Count the output and keep none of it: the grader needs events, not outputs."""
            self.printed += len(json.dumps(msg.get("content", {}), default=str))
            if self.printed > output_bytes and not self.capped:
                self.capped = True
                send(event="note", text=f"the notebook printed more than {output_bytes // 2**20} MiB of output; "
                                        "the rest was not kept")
            return None

    def send_records() -> None:
        for name in sorted(os.listdir(records)):
            path = os.path.join(records, name)
            if name.endswith(".part"):
                continue
            try:
                info = os.lstat(path)
                if not stat.S_ISREG(info.st_mode):
                    send(event="note", text=f"records/{name!r} is not a plain file and was ignored")
                elif info.st_size > RECORD_LIMIT:
                    send(event="note", text=f"a check record of {info.st_size // 2**20} MiB was too large and ignored")
                else:
                    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
                    with os.fdopen(fd, "rb") as fh:
                        send(event="record", data=base64.b64encode(fh.read(RECORD_LIMIT + 1)).decode("ascii"))
                os.unlink(path)
            except OSError as err:
                send(event="note", text=f"records/{name!r} could not be read: {err.strerror}")

    notebook = nbformat.reads(source.decode("utf-8"), as_version=4)
    client = Client(notebook, timeout=cell_timeout, allow_errors=True, interrupt_on_timeout=True,
                    kernel_name="python3")
    # On POSIX the kernel talks over Unix sockets in the working folder: two kernels starting at once over TCP
    # can pick the same free port, and the loser hangs on exit instead of failing.
    client.km = client.create_kernel_manager()
    if os.name == "posix":
        client.km.transport, client.km.ip = "ipc", os.path.join(os.getcwd(), "kernel")
    launch = client.async_start_new_kernel

    async def launch_and_report(**kwargs):
        await launch(**kwargs)
        send(event="kernel", pid=getattr(getattr(client.km, "provisioner", None), "pid", None))

    def on_execute(cell, cell_index):
        send(event="start", index=cell_index)

    def on_cell(cell, cell_index, execute_reply):
        content = (execute_reply or {}).get("content", {})
        send_records()
        send(event="cell", index=cell_index, status=content.get("status", "unknown"),
             ename=str(content.get("ename", ""))[:300], evalue=str(content.get("evalue", ""))[:1000])

    client.async_start_new_kernel = launch_and_report
    client.on_cell_execute = on_execute
    client.on_cell_executed = on_cell
    try:
        client.execute()
    except Exception as err:  # the kernel died or could not start, ...
        send_records()
        why = "the kernel died" if type(err).__name__ == "DeadKernelError" else f"{type(err).__name__}: {err}"[:1000]
        send(event="failed", error=why)
    else:
        send_records()
        send(event="done")


if __name__ == "__main__":
    main()
