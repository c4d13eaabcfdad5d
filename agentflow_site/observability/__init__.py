"""The operator's view of AgentFlow: metrics (`metrics`), traces (`tracing`), error tracking
(`errors`), profiles (`profiling`). Each is off, or costs next to nothing, until configured."""
