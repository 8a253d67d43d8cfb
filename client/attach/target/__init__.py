"""Code that runs inside a target process: the one-shot and attach jobs.

The client never imports these modules to use them: it sends their sources,
with threadctl's core (server/_core), as one job, and the attach agent's
thread executes it inside the target (see client/attach/_jobs.py). The rules:

- Standard library only, and only what the core may use (see
  threadctl._core): nothing that stays mapped or registered in the target.
  In a job, these modules and the core's live in one private package
  (`__threadctl_job__`), which is why they import each other relatively and
  the core's modules as siblings; the job removes the package from
  sys.modules when it ends.
- A process that imported threadctl itself is asked through its own
  threadctl's job API (threadctl._job_api, versioned), never by reaching into
  its modules by name.
- Never raise: every outcome, errors included, becomes the job's result
  (JSON in the private job directory), in the proto's field names, so the
  client decodes it with the same code as a gRPC answer.
- Leave nothing behind: no thread (the agent's thread ends, and its
  `threading` entry is removed), module, file or mapping (the client unloads
  the agent afterwards). The one exception is a forced stop's exception and
  its quiet excepthook, which must outlive the job when the stop is pending.
"""
