//! Reading Prometheus metrics in tests: one series' value from the text
//! format, as a service renders it.

/// The value of `series` (the metric name and its labels exactly as
/// rendered, e.g. `rpc_server_calls_total{service="trips.v1.Trips",method="Get",code="OK"}`),
/// or `None` when the text has no such series.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_exact_series() {
        let text = "# HELP x_total things\nx_total{a=\"1\"} 3\nx_total{a=\"12\"} 4\ny 0.5\n";
        assert_eq!(metric_value(text, r#"x_total{a="1"}"#), Some(3.0));
        assert_eq!(metric_value(text, r#"x_total{a="12"}"#), Some(4.0));
        assert_eq!(metric_value(text, "y"), Some(0.5));
        assert_eq!(metric_value(text, "x_total"), None);
    }
}
