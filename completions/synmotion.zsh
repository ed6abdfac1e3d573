
#compdef synmotion

_synmotion_completion() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _SYNMOTION_COMPLETE=complete_zsh synmotion)
}

compdef _synmotion_completion synmotion

