//! `echo(text: string, n: i64)`: implementing it with `n: String` does not compile.

use kontiki_generated::proto_svc::proto_svc::*;
use kontiki_generated::proto_svc::{Echoed, Item, ModelArg, Types};
use kontiki_rt::codegen::Context;

struct Wrong;

impl ProtoSvc for Wrong {
    async fn echo(&self, _ctx: Context, _text: String, _n: String) -> Result<Echoed, EchoError> {
        unimplemented!()
    }
    async fn client_err(&self, _ctx: Context) -> Result<(), ClientErrError> {
        Ok(())
    }
    async fn boom(&self, _ctx: Context) -> Result<(), BoomError> {
        Ok(())
    }
    async fn ret_none(&self, _ctx: Context) -> Result<(), RetNoneError> {
        Ok(())
    }
    async fn types(&self, _ctx: Context) -> Result<Types, TypesError> {
        unimplemented!()
    }
    async fn model_arg(&self, _ctx: Context, _i: Item, _o: Option<Item>) -> Result<ModelArg, ModelArgError> {
        unimplemented!()
    }
}

fn main() {}
