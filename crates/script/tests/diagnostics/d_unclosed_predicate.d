python$target:::function-entry
/copyinstr(arg1) == "start"
{
	trace(1);
}
