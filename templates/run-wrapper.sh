# ccspec's wrapper for `run:` jobs, given to the job's shell as its -c script:
#   $1 the job's command, $2 the log (optional), $3 the working folder (optional)
# It runs the command in this same shell process (no extra fork/exec per job) and records
# in $CCSPEC_RUN_DIR the pid and, on exit, the exit code, so a restarted ccspec re-attaches
# to the job instead of launching it again; the exit-code file's mtime is the job's recorded
# end (however late ccspec reads it). Opening the log and changing folder happen
# here, in the job's process, not in the runner's. templates/run-launcher.sh runs this
# same text in a forked bash subshell, whose pid is $BASHPID, not $$. A shell stopped by
# a signal does not give its EXIT trap the right status, so the terminating signals with
# the same number everywhere record 128+N themselves; a job killed by KILL leaves no exit
# code (ccspec records why it killed it, or marks it lost). Where the pid or exit code cannot
# be written (the folder is full), an empty file `pid.N` or `exit_code.N` keeps it in its
# name. The set-up is a function so that the launcher parses it once, not once per job; the
# command runs outside of it.
# With the exit code, its EXIT trap records the job's resource usage, as the exit-code file's
# second line (read by ccspec.usage; one file, one write: each new file costs a metadata
# write, the slowest thing on network and VM disks): CPU time of the shell and of the
# children it waited for, and its RSS, from /proc/self/stat (one read by a builtin: no
# process). The peak RSS of a job's children is only in getrusage(RUSAGE_CHILDREN), which no
# shell prints: a job that ran any, where python3 is installed, execs it at exit (no fork;
# what the reaped children used survives an exec), and it writes the file. Without /proc the
# exit code alone. The pid is not written where $CCSPEC_CLAIM (an ssh launch's claim, see
# ccspec.targets.detached) already holds this shell's pid.
# The files it writes (log, pid, exit code) are private, 0600: the log may show secrets.
# The job itself runs with the umask it was started with; on this machine ccspec writes
# its value into the set-up (no fork to ask for it), on other hosts the set-up asks.
__ccspec_note() {
  umask 077
  echo "$2" 2>/dev/null >"$CCSPEC_RUN_DIR/$1" || true 2>/dev/null >"$CCSPEC_RUN_DIR/$1.$2"
}
__ccspec_end() {
  umask 077
  # fields 11, 14-17 and 24 of /proc/self/stat: children's minor faults (> 0: children were
  # reaped), user and system CPU of the shell, then of its reaped children (ticks of 1/100 s),
  # and the shell's RSS (4 kB pages): for a shell that ran no program, about its peak
  { IFS=' ' read -r __ccspec_x __ccspec_x __ccspec_x __ccspec_x __ccspec_x __ccspec_x __ccspec_x \
      __ccspec_x __ccspec_x __ccspec_x __ccspec_ch __ccspec_x __ccspec_x __ccspec_ut __ccspec_st \
      __ccspec_cut __ccspec_cst __ccspec_x __ccspec_x __ccspec_x __ccspec_x __ccspec_x __ccspec_x \
      __ccspec_m __ccspec_x </proc/self/stat; } 2>/dev/null || __ccspec_m=
  if [ -n "$__ccspec_m" ]; then
    __ccspec_m=$((__ccspec_m * 4))
    if [ "$__ccspec_ch" != "${__ccspec_had:-0}" ] && command -v python3 >/dev/null 2>&1; then
      exec python3 -I -S -c 'import os,resource as r,sys,time
d,c,u,s,m,t=sys.argv[1:7];k=r.getrusage(r.RUSAGE_CHILDREN);m=m if m.isdigit() else "0"
try:
 with open(d+"/exit_code","w") as f:f.write(c+"\ns %.3f %.3f %d %s %.6f\n"%(int(u)/100+k.ru_utime,int(s)/100+k.ru_stime,max(int(m),k.ru_maxrss),t or "-",time.time()))
except OSError:
 try:open(d+"/exit_code."+c,"w").close()
 except OSError:pass
os._exit(int(c))' "$CCSPEC_RUN_DIR" "$1" "$__ccspec_ut" "$__ccspec_st" "$__ccspec_m" "${__ccspec_start-}"
    fi
    echo "$1
t $((__ccspec_ut + __ccspec_cut)) $((__ccspec_st + __ccspec_cst)) $__ccspec_m ${__ccspec_start:--} ${EPOCHREALTIME:--}" \
      2>/dev/null >"$CCSPEC_RUN_DIR/exit_code" && return
  fi
  __ccspec_note exit_code "$1"
}
__ccspec_setup() {
  __ccspec_start=${EPOCHREALTIME-}
  # the job's umask, then the children reaped so far (field 11 of /proc/self/stat; the
  # subshell that asked the umask): a job that ran none needs no python3 at its end. On this
  # machine ccspec writes both values in place of these three lines (no fork, no read)
  __ccspec_umask=$(umask)
  { IFS=' ' read -r __ccspec_x __ccspec_x __ccspec_x __ccspec_x __ccspec_x __ccspec_x __ccspec_x \
      __ccspec_x __ccspec_x __ccspec_x __ccspec_had __ccspec_x </proc/self/stat; } 2>/dev/null
  umask 077
  if [ -n "${2-}" ]; then
    [ -d "$CCSPEC_RUN_DIR" ] || mkdir -p "$CCSPEC_RUN_DIR"  # the runner usually made it: no process then
    exec >>"$2" 2>&1
  fi
  trap '__ccspec_end $?' EXIT
  trap 'trap - EXIT; __ccspec_note exit_code 129; exit 129' HUP
  trap 'trap - EXIT; __ccspec_note exit_code 130; exit 130' INT
  trap 'trap - EXIT; __ccspec_note exit_code 131; exit 131' QUIT
  trap 'trap - EXIT; __ccspec_note exit_code 141; exit 141' PIPE
  trap 'trap - EXIT; __ccspec_note exit_code 142; exit 142' ALRM
  trap 'trap - EXIT; __ccspec_note exit_code 143; exit 143' TERM
  __ccspec_x=
  [ -n "${CCSPEC_CLAIM-}" ] && { read -r __ccspec_x <"$CCSPEC_CLAIM"; } 2>/dev/null
  [ "$__ccspec_x" = "${BASHPID:-$$}" ] || __ccspec_note pid "${BASHPID:-$$}"
  unset CCSPEC_CLAIM
  umask "$__ccspec_umask"
  unset __ccspec_umask
  if [ -n "${3-}" ]; then
    cd "$3" || exit 127
  fi
}
__ccspec_setup "$@"
unset -f __ccspec_setup
__ccspec_command=$1
shift $#
eval "$__ccspec_command"
