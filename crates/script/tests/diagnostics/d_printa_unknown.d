python$target:::function-entry
{
	printa(@nothing);
}
