//! `pytap completions` and `pytap man`: shell completion scripts and the
//! manual page, generated from the same definitions as `--help`.

use clap::{Args, ValueEnum};

use super::Cli;

/// `pytap completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

/// Shells pytap writes completions for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    /// GNU bash.
    Bash,
    /// Z shell.
    Zsh,
    /// fish.
    Fish,
}

/// A completion script for `shell`, generated from these definitions.
pub fn completions(shell: CompletionShell) -> Vec<u8> {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    let shell = match shell {
        CompletionShell::Bash => clap_complete::Shell::Bash,
        CompletionShell::Zsh => clap_complete::Shell::Zsh,
        CompletionShell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut cmd, "pytap", &mut out);
    out
}

/// pytap's manual page (roff), generated from these definitions: the
/// program, then one section per subcommand with its options.
pub fn man_page() -> std::io::Result<Vec<u8>> {
    use clap::CommandFactory;
    let cmd = Cli::command();
    let mut out = Vec::new();
    // One page holds every command (there is no pytap-list(1)): the
    // program's sections, a list of the commands naming the sections below,
    // then a section per command.
    let man = clap_mangen::Man::new(cmd.clone());
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    // In the order --help lists them.
    let mut subs: Vec<&clap::Command> = cmd
        .get_subcommands()
        .filter(|s| s.get_name() != "help")
        .collect();
    subs.sort_by_key(|s| s.get_display_order());
    out.extend_from_slice(b".SH COMMANDS\n");
    for sub in &subs {
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        out.extend_from_slice(
            format!(
                ".TP\n\\fBpytap {}\\fR\n{} (section PYTAP {} below)\n",
                sub.get_name(),
                about.replace('\\', "\\\\").replace('-', "\\-"),
                sub.get_name().to_uppercase()
            )
            .as_bytes(),
        );
    }
    man.render_extra_section(&mut out)?;
    man.render_version_section(&mut out)?;
    for sub in subs {
        let name = format!("pytap {}", sub.get_name());
        let sub = sub.clone().bin_name(name.clone());
        let man = clap_mangen::Man::new(sub);
        out.extend_from_slice(format!(".SH \"{}\"\n", name.to_uppercase()).as_bytes());
        man.render_synopsis_section(&mut out)?;
        man.render_description_section(&mut out)?;
        man.render_options_section(&mut out)?;
        man.render_extra_section(&mut out)?;
    }
    Ok(out)
}
