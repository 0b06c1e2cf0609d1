//! The original REST scenario through all eight mixes of the gateway, trips
//! and airports (ours or the original's), compared answer by answer with the
//! all-original system, in one run.

use testkit::{Mixed, Side};

/// One answer: the request, the status, the body (ids replaced by `<id>`
/// once checked to be ids).
type Answer = (String, u16, String);

/// Runs the scenario on `system`: every route, unknown ids, create then get,
/// names outside ASCII.
async fn scenario(system: &Mixed) -> Vec<Answer> {
    let mut answers = Vec::new();
    let mut record = |request: String, status: u16, body: String, ids: &[&str]| {
        let body = ids.iter().fold(body, |body, id| body.replace(id, "<id>"));
        answers.push((request, status, body));
    };
    for path in ["/ping", "/trip-ping", "/airport-ping"] {
        let response = system.get(path).await;
        record(
            format!("GET {path}"),
            response.status().as_u16(),
            response.text().await.unwrap(),
            &[],
        );
    }
    for name in ["Ezeiza", "Córdoba ✈ \"Pajas Blancas\" 🛫"] {
        let body = serde_json::json!({ "airport": name }).to_string();
        let created = system.post("/airport", &body).await;
        let status = created.status().as_u16();
        let id = created.text().await.unwrap();
        assert!(
            airbridge::id::is_id(&id),
            "POST /airport {body}: {status} {id:?}"
        );
        record(format!("POST /airport {body}"), status, id.clone(), &[&id]);
        let read = system.get(&format!("/airport/{id}")).await;
        record(
            "GET /airport/<id>".into(),
            read.status().as_u16(),
            read.text().await.unwrap(),
            &[&id],
        );
    }
    for (from, to) in [
        ("EZE", "CPC"),
        ("Aeroparque Jorge Newbery", "São Paulo–Guarulhos"),
    ] {
        let body = serde_json::json!({ "airport_from": from, "airport_to": to }).to_string();
        let created = system.post("/trip", &body).await;
        let status = created.status().as_u16();
        let id = created.text().await.unwrap();
        assert!(
            airbridge::id::is_id(&id),
            "POST /trip {body}: {status} {id:?}"
        );
        record(format!("POST /trip {body}"), status, id.clone(), &[&id]);
        let read = system.get(&format!("/trip/{id}")).await;
        record(
            "GET /trip/<id>".into(),
            read.status().as_u16(),
            read.text().await.unwrap(),
            &[&id],
        );
    }
    for unknown in ["0123456789abcdef0123456789abcdef", "no-such-id"] {
        for kind in ["airport", "trip"] {
            let path = format!("/{kind}/{unknown}");
            let read = system.get(&path).await;
            record(
                format!("GET {path}"),
                read.status().as_u16(),
                read.text().await.unwrap(),
                &[],
            );
        }
    }
    answers
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Ours => "ours",
        Side::Original => "original",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mix_answers_the_rest_scenario_as_the_original_system() {
    use Side::{Original, Ours};
    let mut reference = None;
    let mut table = String::from(
        "| gateway | trips | airports | answers equal to the all-original system |\n|---|---|---|---|\n",
    );
    for (gateway, trips, airports) in [
        (Original, Original, Original),
        (Original, Ours, Ours),
        (Original, Original, Ours),
        (Original, Ours, Original),
        (Ours, Original, Original),
        (Ours, Original, Ours),
        (Ours, Ours, Original),
        (Ours, Ours, Ours),
    ] {
        let system = Mixed::builder("nameko-rest")
            .gateway(gateway)
            .trips(trips)
            .airports(airports)
            .start()
            .await;
        let mine = scenario(&system).await;
        let reference: &Vec<Answer> = reference.get_or_insert_with(|| mine.clone());
        assert_eq!(
            &mine,
            reference,
            "gateway {}, trips {}, airports {} answered otherwise than the original system",
            side_name(gateway),
            side_name(trips),
            side_name(airports)
        );
        table.push_str(&format!(
            "| {} | {} | {} | {}/{} |\n",
            side_name(gateway),
            side_name(trips),
            side_name(airports),
            mine.len(),
            reference.len()
        ));
    }
    let reference = reference.expect("the reference ran");
    eprintln!("{table}\nthe answers:");
    for (request, status, body) in &reference {
        eprintln!("  {request} -> {status} {body}");
    }
    // The scenario means what it says: unknown ids are null, names survive.
    assert!(
        reference
            .iter()
            .any(|(r, s, b)| r == "GET /trip/no-such-id" && *s == 200 && b == r#"{"trip": null}"#)
    );
    assert!(reference.iter().any(
        |(_, _, b)| b == r#"{"airport": "C\u00f3rdoba \u2708 \"Pajas Blancas\" \ud83d\udeeb"}"#
    ));
}
