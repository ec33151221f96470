#!/bin/sh
# ccspec job wrapper: runs one attempt of a job, detached from ccspec, and records in the
# attempt's run folder its pid and exit code, so a restarted ccspec re-attaches to it
# instead of launching it again. The exit-code file's mtime is the job's recorded end.
#   usage: job-wrapper.sh RUN_DIR COMMAND [ARG...]
# Output goes where the caller pointed stdout/stderr (the job's log).
# The pid and exit code files are private (0600), as everything in the state folder; the
# job keeps the umask it was started with.
# With the exit code, as the exit-code file's second line, it records the job's CPU time and
# peak RSS (read by ccspec.usage): getrusage(RUSAGE_CHILDREN) of this shell, which only a
# program can ask for, so the shell execs python3 for it (no fork; the reaped children's
# usage survives the exec), which writes the file (the job's start: the pid file's mtime).
# Without python3 (or /proc) the exit code alone.
run_dir=$1
shift
job_umask=$(umask)
umask 077
# a full folder: the pid (and below, the exit code) in the name of an empty file, which needs
# no data block
echo $$ 2>/dev/null >"$run_dir/pid" || true 2>/dev/null >"$run_dir/pid.$$"
umask "$job_umask"
# Survive a TERM/INT/HUP sent to the process group long enough to record the job's status;
# the job itself keeps the default dispositions.
trap : TERM INT HUP
"$@" < /dev/null
code=$?
umask 077
if [ -r /proc/self/stat ] && command -v python3 >/dev/null 2>&1; then
  exec python3 -I -S -c 'import os,resource as r,sys,time
d,c=sys.argv[1:3];k=r.getrusage(r.RUSAGE_CHILDREN)
try:t="%.6f"%os.stat(d+"/pid").st_mtime
except OSError:t="-"
try:
 with open(d+"/exit_code","w") as f:f.write(c+"\ns %.3f %.3f %d %s %.6f\n"%(k.ru_utime,k.ru_stime,k.ru_maxrss,t,time.time()))
except OSError:
 try:open(d+"/exit_code."+c,"w").close()
 except OSError:pass
os._exit(int(c))' "$run_dir" "$code"
fi
echo "$code" 2>/dev/null >"$run_dir/exit_code" || true 2>/dev/null >"$run_dir/exit_code.$code"
exit "$code"
