//! `kontiki completions` and `kontiki man`: the shell completion scripts and the manual pages,
//! both made from the clap command itself, so they never fall behind the options.

use crate::cli::{Cli, CompletionsArgs, ManArgs};
use crate::exit::{Exit, Failure};
use clap::CommandFactory as _;
use std::path::Path;

/// Writes the completion script for one shell to stdout.
pub(crate) fn completions(args: &CompletionsArgs) -> Result<(), Failure> {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "kontiki", &mut script);
    write_stdout(&script)
}

/// Writes kontiki.1 (and, with `--out`, a page per subcommand) as roff.
pub(crate) fn man(args: &ManArgs) -> Result<(), Failure> {
    let cmd = built();
    match &args.out {
        None => write_stdout(&render(cmd)?),
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| io_failure(dir, &e))?;
            let mut written = 0;
            write_pages(cmd, "kontiki", dir, &mut written)?;
            eprintln!("wrote {written} manual pages to {}", dir.display());
            Ok(())
        }
    }
}

/// The command with its global options (`--amqp-url`, `--config`) copied into every
/// subcommand, so each subcommand's page lists them too.
fn built() -> clap::Command {
    let mut cmd = Cli::command();
    cmd.build();
    cmd
}

/// The page of `cmd` as `<name>.1`, then those of its subcommands as `<name>-<sub>.1`.
fn write_pages(
    cmd: clap::Command,
    name: &str,
    dir: &Path,
    written: &mut usize,
) -> Result<(), Failure> {
    let cmd = cmd.name(name.to_owned());
    let subcommands: Vec<clap::Command> = cmd
        .get_subcommands()
        .filter(|s| s.get_name() != "help")
        .cloned()
        .collect();
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, render(cmd)?).map_err(|e| io_failure(&path, &e))?;
    *written += 1;
    for sub in subcommands {
        let sub_name = format!("{name}-{}", sub.get_name());
        write_pages(sub, &sub_name, dir, written)?;
    }
    Ok(())
}

fn render(cmd: clap::Command) -> Result<Vec<u8>, Failure> {
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut page).map_err(|e| {
        Failure::new(
            Exit::Failure,
            "IO_ERROR",
            format_args!("render a page: {e}"),
        )
    })?;
    Ok(page)
}

fn write_stdout(bytes: &[u8]) -> Result<(), Failure> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    // A closed pipe (`kontiki man | head`) ends the command quietly, as for every output.
    let _ = out.write_all(bytes).and_then(|()| out.flush());
    Ok(())
}

fn io_failure(path: &Path, e: &std::io::Error) -> Failure {
    Failure::new(
        Exit::Failure,
        "IO_ERROR",
        format_args!("could not write {}: {e}", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subcommand_gets_a_page() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut written = 0;
        write_pages(built(), "kontiki", dir.path(), &mut written).expect("pages");
        for page in [
            "kontiki.1",
            "kontiki-call.1",
            "kontiki-failed-replay.1",
            "kontiki-man.1",
        ] {
            let text = std::fs::read_to_string(dir.path().join(page)).expect(page);
            assert!(
                text.starts_with(".ie \\n(.g .ds Aq"),
                "{page} is not roff: {text:.80}"
            );
        }
        let call = std::fs::read_to_string(dir.path().join("kontiki-call.1")).expect("call page");
        assert!(call.contains("kontiki\\-call"), "{call:.400}");
        assert!(call.contains("\\-\\-timeout"), "the options are listed");
        assert!(call.contains("\\-\\-amqp\\-url"), "and the global ones");
        assert_eq!(written, std::fs::read_dir(dir.path()).expect("dir").count());
    }

    #[test]
    fn completions_name_the_subcommands() {
        let mut cmd = Cli::command();
        let mut script = Vec::new();
        clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, "kontiki", &mut script);
        let script = String::from_utf8(script).expect("utf-8");
        for word in [
            "call",
            "publish",
            "listen",
            "services",
            "failed",
            "completions",
        ] {
            assert!(script.contains(word), "{word} missing");
        }
    }
}
