#![doc = include_str!("../README.md")]

use kontiki_generated::billing::Invoice;
use kontiki_generated::billing::billing::{
    Billing, BillingPublisher, BillingServer, CreateInvoiceError,
};
use kontiki_generated::user_events::UserCreated;
use kontiki_rt::codegen::{Uuid, chrono};
use kontiki_rt::{Context, Service};

/// The description `--help` prints.
pub const DESCRIPTION: &str = "Example Kontiki service: creates invoices and announces new users.";

/// Creates invoices.
#[derive(Debug, Default)]
pub struct Invoices;

impl Billing for Invoices {
    async fn create_invoice(
        &self,
        ctx: Context,
        user_id: String,
    ) -> Result<Invoice, CreateInvoiceError> {
        let invoice = Invoice {
            id: Uuid::new_v4(),
            user_id: user_id.clone(),
            created_at: chrono::Utc::now(),
        };
        // Fire and forget: whoever handles `user.created` (user-events) reacts to it.
        BillingPublisher::new(ctx.messenger().clone())
            .user_created(&UserCreated {
                id: user_id.clone(),
            })
            .await?;
        tracing::info!(
            "create_invoice({user_id:?}) -> invoice {}; published user.created {{\"id\": {user_id:?}}}",
            invoice.id
        );
        Ok(invoice)
    }
}

/// The billing service, ready for [`kontiki_rt::cli::run`] or [`Service::start`].
pub fn service() -> kontiki_rt::Result<Service> {
    BillingServer::new(Invoices).service_builder().build()
}
