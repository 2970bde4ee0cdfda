//! The futures of generated clients, publishers and session handles are `Send`, and the
//! generated types are `Send + Sync`: they can be used from spawned tasks. Checked at compile
//! time; the test runs the checks so a regression is a build failure of this test.

use kontiki_generated::features::features::{FeaturesClient, FeaturesPublisher, FeaturesSession};
use kontiki_generated::features::{Kind, Widget};

fn send<T: Send>(_: &T) {}
fn send_sync<T: Send + Sync>() {}

#[allow(
    dead_code,
    reason = "only type-checked: building the futures needs a broker"
)]
fn futures_are_send(c: &FeaturesClient, p: &FeaturesPublisher, s: &FeaturesSession, w: &Widget) {
    send(&c.create_widget(Kind::Small, "t", "plain"));
    send(&c.find_widget(kontiki_rt::codegen::Uuid::nil()));
    send(&c.open_session());
    send(&p.widget_created(w));
    send(&s.widget_deleted(&w.id));
}

#[test]
fn generated_types_are_send_and_sync() {
    send_sync::<FeaturesClient>();
    send_sync::<FeaturesPublisher>();
    send_sync::<FeaturesSession>();
    send_sync::<Widget>();
    send_sync::<kontiki_generated::features::features::CreateWidgetError>();
    let _ = futures_are_send;
}
