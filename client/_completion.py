"""Shell completion for `threadctl`, generated from the CLI's own parser, so
it cannot fall behind the commands and options.

`threadctl completion bash` prints a bash function; `completion zsh` prints
the same behind zsh's bashcompinit, which runs bash completion functions.
It completes commands, each command's options and choices (`--sort cpu`,
`completion bash`), and file names after the options that take a file; other
values (PIDs, seconds) are left to the user.
"""

from __future__ import annotations

import argparse

_FILE_OPTIONS = ("--tls-ca", "--tls-cert", "--tls-key", "--token-file", "--target")

_BASH = """\
# threadctl completion for bash: eval "$(threadctl completion bash)"
_threadctl() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} prev=${{COMP_WORDS[COMP_CWORD-1]}}
    local command="" i word
    for ((i = 1; i < COMP_CWORD; i++)); do
        word=${{COMP_WORDS[i]}}
        case "$word" in
            {valued}) ((i++)) ;;
            -*) ;;
            *) command=$word; break ;;
        esac
    done
    case "$prev" in
{choices}
        {files}) COMPREPLY=($(compgen -f -- "$cur")); return ;;
        {valued}) COMPREPLY=(); return ;;
    esac
    case "$command" in
{per_command}
        "") COMPREPLY=($(compgen -W "{commands} {top_options}" -- "$cur")) ;;
    esac
}}
complete -F _threadctl threadctl
"""

_ZSH = """\
# threadctl completion for zsh: eval "$(threadctl completion zsh)"
autoload -U +X bashcompinit && bashcompinit
"""


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    """The completion script for `shell` ("bash" or "zsh")."""
    subparsers = commands(parser)
    valued = sorted(
        {option for sub in (parser, *subparsers.values()) for option in options(sub, valued=True)}
    )
    per_command = "\n".join(
        f'        {name}) COMPREPLY=($(compgen -W "{" ".join(_words(sub))}" -- "$cur")) ;;'
        for name, sub in subparsers.items()
    )
    with_choices = {
        action.option_strings[-1]: " ".join(map(str, action.choices))
        for sub in (parser, *subparsers.values())
        for action in sub._actions
        if action.option_strings and action.choices
    }
    choices = "\n".join(
        f'        {option}) COMPREPLY=($(compgen -W "{words}" -- "$cur")); return ;;'
        for option, words in sorted(with_choices.items())
    )
    bash = _BASH.format(
        choices=choices,
        valued="|".join(valued),
        files="|".join(_FILE_OPTIONS),
        per_command=per_command,
        commands=" ".join(subparsers),
        top_options=" ".join(options(parser)),
    )
    return bash if shell == "bash" else _ZSH + bash


def commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _words(parser: argparse.ArgumentParser) -> list[str]:
    """What may follow a command: its options, and its positionals' choices."""
    positional = [
        str(choice)
        for action in parser._actions
        if not action.option_strings and action.choices
        for choice in action.choices
    ]
    return [*options(parser), *positional]


def options(parser: argparse.ArgumentParser, valued: bool = False) -> list[str]:
    """The option strings of `parser` (only those that take a value, if `valued`)."""
    return [
        option
        for action in parser._actions
        if action.option_strings and (not valued or action.nargs != 0)
        for option in action.option_strings
        if option.startswith("--") or valued
    ]
