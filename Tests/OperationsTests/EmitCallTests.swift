@testable import Operations
import Testing

@Suite struct EmitCallTests {
    @Test("doctor reads the calls of webhooky.emit and has_webhooks in a function's source: the event when it is a literal, and whether an account is passed")
    func calls() {
        let source = """
            BEGIN
                -- webhooky.emit('in.a.comment', x) is not a call
                /* nor webhooky.emit('in.a.block', x, y) */
                IF webhooky.has_webhooks('order.paid') THEN
                    PERFORM webhooky.emit('order.paid', jsonb_build_object('id', NEW.id, 'note', 'a, b) c'));
                END IF;
                PERFORM webhooky.emit('order.shipped', shop.payload(NEW, OLD), NEW.shop_id::text);
                PERFORM Webhooky . Emit ('order.cancelled'::text, '{}', NULL);
                PERFORM webhooky.emit(event => 'order.refunded', payload => p, account_id => NEW.shop_id);
                PERFORM webhooky.emit(kind, p, -- the account:
                                      NEW.shop_id);
                PERFORM webhooky.emit('it''s', p, null::text /* none */);
                PERFORM webhooky.emitter('order.x', p);
                RAISE NOTICE 'webhooky.emit(''in.a.string'', p)';
                RAISE NOTICE $msg$ webhooky.emit('dollar.quoted', p) $msg$;
                PERFORM webhooky.has_webhooks('order.paid', NEW.shop_id);
            END
            """
        #expect(EmitCall.calls(in: source) == [
            EmitCall(function: .hasWebhooks, event: "order.paid", passesAccount: false),
            EmitCall(function: .emit, event: "order.paid", passesAccount: false),
            EmitCall(function: .emit, event: "order.shipped", passesAccount: true),
            EmitCall(function: .emit, event: "order.cancelled", passesAccount: false),
            EmitCall(function: .emit, event: "order.refunded", passesAccount: true),
            EmitCall(function: .emit, event: nil, passesAccount: true),
            EmitCall(function: .emit, event: "it's", passesAccount: false),
            EmitCall(function: .hasWebhooks, event: "order.paid", passesAccount: true),
        ])
        // Quoted names, nested comments, literals and NULLs in more spellings (found by a review).
        let more = """
            /* Before e-shops had accounts (/* 2024 */) this was:
            PERFORM webhooky.emit('customer.credit_changed', p);
            */
            PERFORM "webhooky".emit(E'order.paid', p, ( NULL ));
            PERFORM webhooky."emit"(('order.paid')::varchar(20), p, (NULL) :: text);
            PERFORM webhooky.emit('order.paid', p, "account_id" => NULL);
            PERFORM webhooky.emit(E'order.\\paid', p, shop);
            PERFORM "WEBHOOKY".emit('not.ours', p);
            """
        #expect(EmitCall.calls(in: more) == [
            EmitCall(function: .emit, event: "order.paid", passesAccount: false),
            EmitCall(function: .emit, event: "order.paid", passesAccount: false),
            EmitCall(function: .emit, event: "order.paid", passesAccount: false),
            EmitCall(function: .emit, event: nil, passesAccount: true),
        ])
        // Sources cut short anywhere: no crash, no call.
        for cut in ["webhooky.emit('a", "webhooky.emit(\"a", "webhooky.emit(E'a\\", "webhooky.emit($x$ a", "webhooky.emit(/* a", "webhooky.", "webhooky. ",
                    "/* /* */ webhooky.emit('a', p)", "'", "E'\\", "$a$", "\""] {
            #expect(EmitCall.calls(in: cut) == [], "\(cut)")
        }
        // Two literals joined are no one event; a source cut short inside a call gives none.
        #expect(EmitCall.calls(in: "webhooky.emit('a' || 'b', p)") == [EmitCall(function: .emit, event: nil, passesAccount: false)])
        #expect(EmitCall.calls(in: "webhooky.emit('a', p") == [])
        #expect(EmitCall.calls(in: "webhooky.emit()") == [EmitCall(function: .emit, event: nil, passesAccount: false)])
    }
}
