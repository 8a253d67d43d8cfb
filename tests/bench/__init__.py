"""`make bench`: threadctl measured beside its baselines, in one run.

Run with `PYTHONPATH=tests python -m bench [--smoke] [--json PATH]`. Every
figure is compared with a floor measured in the same run on the same machine
(a bare gRPC echo, bare Event wakes, a bare async exception, a host without
a server, `import grpc`, py-spy, an in-host stop_all), because absolute
numbers on a shared 2-core machine mean little and ratios within one run mean
a lot.
"""
