using Mica;
using Mica.Cli;
using Mica.Server.Hosting;

// The same binary is the master (what users run) and, behind a hidden command, each worker.
if (args is [WorkerProgram.Command, var fromMaster, var toMaster])
    return WorkerProgram.Run(fromMaster, toMaster);

var (options, exitCode) = MicaCommand.Parse(args);
return options is null ? exitCode : Supervisor.Run(options);
