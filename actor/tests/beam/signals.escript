#!/usr/bin/env escript
%% The rows of actor/tests/all/signals.rs, run on a real BEAM (Debian's erlang-base, OTP 25):
%% the same names, the same observations, one "name<TAB>observation" line each. The Rust
%% test runs this script and requires every line to equal the row's `want`.
-mode(compile).

-define(RACES, 2000).

main(_) ->
    %% The crash rows crash processes on purpose: no error reports on stdout.
    logger:set_primary_config(level, none),
    Signal = [{Via, Cause, Trap} || {Via, Causes} <- [{link, [normal, shutdown, {shutdown, x}, kill, boom, crash, killed]},
                                                      {exit2, [normal, shutdown, {shutdown, x}, kill, boom]},
                                                      {exit_self, [normal, shutdown, {shutdown, x}, kill, boom]}],
                                    Cause <- Causes, Trap <- [true, false]],
    lists:foreach(fun({Via, Cause, Trap}) ->
                          Name = io_lib:format("~s ~s ~s", [via_name(Via), term(Cause), trap_name(Trap)]),
                          out(Name, in_process(fun() -> signal_row(Via, Cause, Trap) end))
                  end, Signal),
    Others = [{"link to a dead pid, trapping", fun link_dead_trapping/0},
              {"link to a dead pid, not trapping", fun link_dead_not_trapping/0},
              {"link to self", fun link_self/0},
              {"monitor a dead pid", fun monitor_dead/0},
              {"demonitor flush of a fired monitor", fun demonitor_fired/0},
              {"name released before DOWN", fun name_released/0},
              {"chain: exit(kill) through a non-trapping link", fun() -> chain(false) end},
              {"chain: exit/2 kill through a non-trapping link", fun() -> chain(true) end},
              {"unlink against a peer exiting at the same time", fun unlink_race/0},
              {"demonitor(flush) against a target exiting at the same time", fun demonitor_race/0},
              {"monitor against a target exiting at the same time", fun monitor_race/0},
              {"link against a peer exiting at the same time", fun link_race/0}],
    [out(N, in_process(F)) || {N, F} <- Others],
    ok.

out(Name, Obs) -> io:format("~s\t~s~n", [Name, Obs]).

in_process(F) ->
    Me = self(),
    {P, M} = spawn_monitor(fun() -> Me ! {result, self(), lists:flatten(F())} end),
    receive
        {result, P, R} -> receive {'DOWN', M, process, P, _} -> R end;
        {'DOWN', M, process, P, Why} -> lists:flatten(io_lib:format("row crashed: ~p", [Why]))
    end.

via_name(link) -> "link";
via_name(exit2) -> "exit/2";
via_name(exit_self) -> "exit(self)".
trap_name(true) -> "trapping";
trap_name(false) -> "not trapping".

%% A crash (error with a stack trace) prints as "crash", as rusm's Crashed(_) does.
term({_, [{_, _, _, _} | _]}) -> "crash";
term(crash) -> "crash";
term(T) when is_atom(T) -> atom_to_list(T);
term(T) -> lists:flatten(io_lib:format("~w", [T])).

victim_loop(Me) ->
    receive
        {'EXIT', From, R} -> Me ! {mailbox, From, R};
        ping -> Me ! pong;
        {exit_self, R} -> exit(self(), R);
        _ -> ok
    end,
    victim_loop(Me).

signal_row(Via, Cause, Trap) ->
    Me = self(),
    Victim = spawn(fun() -> process_flag(trap_exit, Trap), victim_loop(Me) end),
    Partner = spawn(fun() ->
                            process_flag(trap_exit, true),
                            link(Victim),
                            Me ! ready,
                            partner_loop(Me, Victim)
                    end),
    receive ready -> ok end,
    MV = monitor(process, Victim),
    {Sender, SenderDown} =
        case Via of
            link ->
                {S, MS} = spawn_monitor(fun() ->
                                                link(Victim),
                                                Me ! ready,
                                                receive go -> ok end,
                                                case Cause of
                                                    crash -> error(boom);
                                                    killed -> receive never -> ok end;
                                                    R -> exit(R)
                                                end
                                        end),
                receive ready -> ok end,
                case Cause of
                    killed -> exit(S, kill);
                    _ -> S ! go
                end,
                receive {'DOWN', MS, process, S, SR} -> {S, [SR]} end;
            exit2 -> exit(Victim, Cause), {Me, []};
            exit_self -> Victim ! {exit_self, Cause}, {Me, []}
        end,
    Who = fun(P) when P =:= Victim -> "self"; (P) when P =:= Sender -> "sender"; (_) -> "other" end,
    Victim ! ping,
    {Seen, Fate} = collect(Victim, MV, Who, [], 0),
    Out = case Fate of
              lives ->
                  exit(Partner, kill), exit(Victim, kill),
                  "lives" ++ [", got " ++ G || G <- Seen];
              {dies, R} ->
                  PR = receive {partner, X} -> X end,
                  exit(Partner, kill),
                  [] = Seen,
                  "dies " ++ term(R) ++ ", partner " ++ term(PR)
          end,
    Out ++ ["; sender down " ++ term(SR) || SR <- SenderDown].

partner_loop(Me, Victim) ->
    receive {'EXIT', Victim, R} -> Me ! {partner, R}; _ -> ok end,
    partner_loop(Me, Victim).

collect(_Victim, _MV, _Who, Seen, 2) -> {lists:reverse(Seen), lives};
collect(Victim, MV, Who, Seen, Pongs) ->
    receive
        pong ->
            Pongs =:= 0 andalso (Victim ! ping),
            collect(Victim, MV, Who, Seen, Pongs + 1);
        {mailbox, From, R} ->
            collect(Victim, MV, Who, [lists:flatten(io_lib:format("{'EXIT',~s,~s}", [Who(From), term(R)])) | Seen], Pongs);
        {'DOWN', MV, process, Victim, R} -> {lists:reverse(Seen), {dies, R}}
    end.

dead_pid() ->
    {P, M} = spawn_monitor(fun() -> ok end),
    receive {'DOWN', M, process, P, _} -> P end.

link_dead_trapping() ->
    process_flag(trap_exit, true),
    D = dead_pid(),
    true = link(D),
    receive {'EXIT', D, R} -> "ok, got {'EXIT',dead," ++ term(R) ++ "}" after 1000 -> "ok, nothing" end.

link_dead_not_trapping() ->
    D = dead_pid(),
    try link(D) of
        true -> "ok"
    catch error:noproc ->
            receive X -> io_lib:format("error noproc, got ~p", [X]) after 20 -> "error noproc, lives" end
    end.

link_self() ->
    true = link(self()),
    {links, L} = process_info(self(), links),
    receive X -> io_lib:format("got ~p", [X]) after 20 ->
            case L of [] -> "ok, nothing"; _ -> io_lib:format("links ~p", [L]) end
    end.

monitor_dead() ->
    D = dead_pid(),
    M = monitor(process, D),
    receive {'DOWN', M, process, D, R} -> "down " ++ term(R) after 1000 -> "nothing" end.

demonitor_fired() ->
    D = dead_pid(),
    M = monitor(process, D),
    timer:sleep(5),
    Active = demonitor(M, [flush, info]),
    receive X -> io_lib:format("~p, got ~p", [Active, X]) after 20 -> atom_to_list(Active) ++ ", mailbox empty" end.

name_released() ->
    {P, M} = spawn_monitor(fun() -> register('conformance-name', self()), receive _ -> ok end end),
    wait_registered('conformance-name'),
    exit(P, kill),
    receive {'DOWN', M, process, P, _} -> ok end,
    Free = whereis('conformance-name') =:= undefined,
    Again = (catch register('conformance-name', self())) =:= true,
    catch unregister('conformance-name'),
    case {Free, Again} of
        {true, true} -> "free at DOWN, registered again";
        X -> io_lib:format("~p", [X])
    end.

wait_registered(N) ->
    case whereis(N) of undefined -> erlang:yield(), wait_registered(N); _ -> ok end.

chain(Killed) ->
    Me = self(),
    Start = spawn(fun() -> receive go -> exit(kill) end end),
    {Middle, MM} = spawn_monitor(fun() -> link(Start), Me ! ready, receive never -> ok end end),
    receive ready -> ok end,
    spawn(fun() ->
                  process_flag(trap_exit, true),
                  link(Middle),
                  Me ! ready,
                  receive {'EXIT', Middle, R} -> Me ! {partner, R} end
          end),
    receive ready -> ok end,
    case Killed of true -> exit(Start, kill); false -> Start ! go end,
    Died = receive {'DOWN', MM, process, Middle, R1} -> R1 end,
    Got = receive {partner, R2} -> R2 end,
    "middle dies " ++ term(Died) ++ ", end got " ++ term(Got).

drain_exits(P, N) ->
    receive {'EXIT', P, _} -> drain_exits(P, N + 1) after 0 -> N end.

unlink_race() ->
    process_flag(trap_exit, true),
    Late = lists:sum([begin
                          {P, M} = spawn_opt(fun() -> receive go -> exit(boom) end end, [link, monitor]),
                          P ! go,
                          true = unlink(P),
                          drain_exits(P, 0),
                          receive {'DOWN', M, process, P, _} -> ok end,
                          drain_exits(P, 0)
                      end || _ <- lists:seq(1, ?RACES)]),
    case Late of 0 -> "no EXIT after unlink"; _ -> io_lib:format("~p of ~p EXITs after unlink", [Late, ?RACES]) end.

demonitor_race() ->
    Late = lists:sum([begin
                          {P, M} = spawn_monitor(fun() -> receive go -> ok end end),
                          M2 = monitor(process, P),
                          P ! go,
                          demonitor(M, [flush]),
                          receive {'DOWN', M2, process, P, _} -> ok end,
                          receive {'DOWN', M, process, P, _} -> 1 after 0 -> 0 end
                      end || _ <- lists:seq(1, ?RACES)]),
    case Late of 0 -> "no DOWN after demonitor"; _ -> io_lib:format("~p of ~p DOWNs after demonitor", [Late, ?RACES]) end.

link_race() ->
    process_flag(trap_exit, true),
    Wrong = lists:sum([begin
                           {P, M} = spawn_monitor(fun() -> receive go -> exit(boom) end end),
                           P ! go,
                           true = link(P),
                           receive {'DOWN', M, process, P, _} -> ok end,
                           timer:sleep(0),
                           case drain_exits(P, 0) of 1 -> 0; _ -> 1 end
                       end || _ <- lists:seq(1, ?RACES)]),
    case Wrong of 0 -> "exactly one EXIT each time"; _ -> io_lib:format("~p of ~p tries without exactly one EXIT", [Wrong, ?RACES]) end.

monitor_race() ->
    Wrong = lists:sum([begin
                           {P, M0} = spawn_monitor(fun() -> receive go -> exit(boom) end end),
                           P ! go,
                           M = monitor(process, P),
                           receive {'DOWN', M0, process, P, _} -> ok end,
                           N = count_downs(M, 0, 5000),
                           case N of 1 -> 0; _ -> 1 end
                       end || _ <- lists:seq(1, ?RACES)]),
    case Wrong of 0 -> "exactly one DOWN each time"; _ -> io_lib:format("~p of ~p tries without exactly one DOWN", [Wrong, ?RACES]) end.

count_downs(M, N, Wait) ->
    receive {'DOWN', M, process, _, _} -> count_downs(M, N + 1, 0) after Wait -> N end.
