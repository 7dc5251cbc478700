"""The sweep as SLURM jobs: `python sweep.py CONFIG --slurm DIR` calls write_jobs, which writes
into DIR pretrain_<run>.sbatch (whole nodes, srun torchrun), finetune_<size>.sbatch (a job array
after its pre-training job), scratch.sbatch, fit.sbatch (once all ended), common.sh (how a job runs,
resumes and requeues a run; slurm_common.sh) and submit.sh. docs/sweeps.md tells the whole story.
"""

import os
import re

from util import atomic_write, check

RDZV_PORT = 29500  # torchrun's rendezvous on a pre-training job's first node (--exclusive: one job)
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'slurm_common.sh')) as f:
    COMMON = f.read()
SUBMIT = """#!/bin/bash
# Submits the sweep's SLURM jobs in order (written by `python sweep.py ... --slurm DIR`).
# Run it again once they left the queue (squeue --me) to resubmit what did not finish:
# finished runs are skipped, the rest resume from their ckpt.pt.
set -euo pipefail"""

def write(path, text, mode=0o644):
    """Atomically: queued jobs read their tasks file and common.sh while a rerun rewrites them."""
    def write_text(f):
        f.write(text.encode())
        os.fchmod(f.fileno(), mode)
    atomic_write([(path, write_text)])

def sbatch_script(name, o, d, options, body, partition='partition'):
    """#SBATCH lines (name, o's partition and account, options, o's options), o's setup, body."""
    opts = [f'--job-name={name}', *(f'--{k}={o[p]}' for k, p in (('partition', partition),
                                                                ('account', 'account')) if o[p]),
            *options, *o['options'], f'--chdir={os.getcwd()}', '--open-mode=append']
    return '\n'.join(['#!/bin/bash', *(f'#SBATCH {x}' for x in opts), o['setup'],
                      'set -euo pipefail', f'source {d}/common.sh', *body, ''])

def resources(cpus, mem, time, output, *more):
    return [f'--cpus-per-task={cpus}', f'--mem={mem}', *more, f'--time={time}',
            f'--output={output}']

def pretrain_job(name, cmd, nodes, o, d):
    """Whole nodes (their CPUs and memory), one torchrun each over its GPUs; a CPU node: python."""
    g, train = o['gpus_per_node'], ' '.join(cmd[cmd.index('train.py'):])  # no --print launcher
    options = [f'--nodes={nodes}', '--ntasks-per-node=1', *([f'--gpus-per-node={g}'] if g else []),
               '--exclusive', '--requeue',
               *resources(o['cpus'] * max(1, g), 0 if g else o['mem'], o['time_pretrain'],
                          f'{d}/logs/%x_%j.out', f"--signal=B:USR1@{o['signal_margin']}")]
    body = ['head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
            f'run_resumable srun torchrun --nnodes="$SLURM_NNODES" --nproc_per_node={g} '
            f'--rdzv_id="$SLURM_JOB_ID" --rdzv_backend=c10d '
            f'--rdzv_endpoint="$head:{RDZV_PORT}" {train}'] if g else [
                f'run_resumable srun python {train}']
    return sbatch_script(name, o, d, options, body)

def array_job(name, tasks_file, o, d):
    """One task per line of tasks_file, each on one GPU (a CPU task on CPU nodes)."""
    options = [*(['--gres=gpu:1'] if o['gpus_per_node'] else []), '--requeue',
               *resources(o['cpus'], o['mem'], o['time_transfer'], f'{d}/logs/%x_%A_%a.out',
                          f"--signal=B:USR1@{o['signal_margin']}", '--kill-on-invalid-dep=yes')]
    body = ['set -f  # the words of a command are not file patterns',
            f'run_resumable $(sed -n "${{SLURM_ARRAY_TASK_ID}}p" {tasks_file})']
    return sbatch_script(name, o, d, options, body)

def job_var(name):  # submit.sh's variable for a pre-training run's job id
    return 'job_' + re.sub(r'\W', '_', name)

def write_jobs(directory, runs, fit_cmd, nodes, **o):
    """runs: (name, command as --print shows it, the run it needs first) in dependency order;
    nodes: pre-training run -> nodes of its job; o: sweep.py's slurm_* settings, unprefixed."""
    d = os.path.abspath(directory)
    for word in (d, os.getcwd(), *(w for _, cmd, _ in runs for w in cmd)):
        check(any(c.isspace() for c in word),
              f"{word!r} has white space, but the SLURM jobs split commands at spaces: rename it")
    pretrain = [(name, cmd) for name, cmd, _ in runs if name.startswith('pt_')]
    unknown = sorted(n[len('pt_N'):] for n in set(nodes) - {name for name, _ in pretrain})
    check(unknown, f"pretrain_nodes names {', '.join(unknown)}, which is not one of the sizes: "
          "name a size of the sweep config")
    check(not o['gpus_per_node'] and any(n > 1 for n in nodes.values()),
          "pretrain_nodes asks for more than one node, but gpus_per_node=0 runs a CPU "
          "pre-training job as one process: set gpus_per_node")
    os.makedirs(os.path.join(d, 'logs'), exist_ok=True)  # sbatch does not create --output's folder
    write(os.path.join(d, 'common.sh'), COMMON)
    arrays = {}  # the transfer runs, an array per run they start from (the scratch runs: None)
    for name, cmd, need in runs:
        if not name.startswith('pt_'):
            arrays.setdefault(need, []).append(' '.join(cmd))
    throttle = f"%{o['throttle']}" if o['throttle'] else ''
    submit = [SUBMIT, f'cd {os.getcwd()}', f'source {d}/common.sh',
              'ended=()  # every job submitted: the fit waits for them',
              'submit() { JOB=$(sbatch --parsable "$@"); JOB=${JOB%%;*}; ended+=("$JOB"); '
              'echo "submitted job $JOB: ${*: -1}"; }']
    for name, cmd in pretrain:
        script, var = f'{d}/pretrain_{name}.sbatch', job_var(name)
        write(script, pretrain_job(name, cmd, nodes.get(name, 1), o, d))
        submit += [f"{var}=''", f"finished {cmd[-1][len('--out_dir='):]} || "
                   f"{{ submit {script}; {var}=$JOB; }}"]
    for need, lines in sorted(arrays.items(), key=lambda a: a[0] is not None):  # scratch first
        label = 'scratch' if need is None else f"finetune_{need[len('pt_'):]}"
        tasks_file = os.path.join(d, f'{label}.txt')
        write(tasks_file, ''.join(line + '\n' for line in lines))
        write(os.path.join(d, f'{label}.sbatch'), array_job(label, tasks_file, o, d))
        after = f' ${{{job_var(need)}:+--dependency=afterok:${job_var(need)}}}' if need else ''
        submit += [f'tasks=$(unfinished {tasks_file})', '[ -z "$tasks" ] || submit '
                   f'--array="$tasks{throttle}"{after} {d}/{label}.sbatch']
    fit = resources(o['cpus'], o['mem'], o['time_transfer'], f'{d}/logs/%x_%j.out')
    write(f'{d}/fit.sbatch', sbatch_script('fit', o, d, fit, [' '.join(fit_cmd)], 'partition_cpu'))
    submit += ['deps=$(IFS=:; echo "${ended[*]:-}")',
               f'submit ${{deps:+--dependency=afterany:$deps}} {d}/fit.sbatch']
    write(os.path.join(d, 'submit.sh'), '\n'.join(submit) + '\n', 0o755)
    print(f"sweep: {len(pretrain)} pre-training jobs and {len(arrays)} job arrays of "
          f"{sum(map(len, arrays.values()))} tasks in {d}; submit them with: bash {d}/submit.sh")
